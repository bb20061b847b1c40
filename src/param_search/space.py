"""Parameter spaces: grids, their algebra (``+``, ``*``, ``k *``) and sampling.

A :class:`ParamSpace` maps parameter names to ranges of values and stands for
the Cartesian product of those ranges::

    space = ParamSpace(a=range(10), b=1e-3, c='hello', d=[True, False])
    len(space)          # 20 points
    space[3]            # Params(a=1, b=0.001, c='hello', d=False)
    space['a']          # range(0, 10)
    space.sample(5)     # 5 distinct points, chosen at random

Spaces combine into composites that are still ``ParamSpace`` instances:

* ``a + b`` (:class:`SumSpace`): the points of ``a`` then those of ``b``; the
  two spaces must have the same parameter names.
* ``a * b`` (:class:`ProductSpace`): every point of ``a`` merged with every
  point of ``b`` (``b`` varies fastest); the names must be disjoint.  The
  product of two plain grids is simply a bigger plain grid.
* ``k * a`` or ``a * k`` (:class:`RepeatSpace`): the points of ``a``, ``k``
  times over.

A value may also be a distribution, i.e. any object with an ``rvs`` method
such as ``scipy.stats.loguniform(1e-5, 1e-1)``.  Such a space can only be
sampled (random search); see :meth:`ParamSpace.sample`.

Spaces are immutable: every mapping method that would change one raises
:class:`~param_search.errors.ParamSpaceError`.
"""
from __future__ import annotations

import bisect
import math
import numbers
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from functools import cached_property
from itertools import accumulate, chain, product, repeat
from typing import Any

import numpy as np

from param_search.errors import ParamSpaceError

__all__ = ["Params", "ParamSpace", "SumSpace", "ProductSpace", "RepeatSpace"]

#: Spaces up to this size draw indices with numpy's vectorised generator.
_NUMPY_INT_LIMIT = 2**63
#: Without replacement, use a permutation when k is at least this fraction of n.
_DENSE_FRACTION = 0.25
#: A grid decodes points from runs of names with at most this many sub-points each.
_RUN_ROWS = 1024

_SINGLE_TYPES = (str, bytes, bytearray, numbers.Number, bool, type(None), Mapping)

#: The methods that would change a space: those MutableMapping adds to Mapping, and the two
#: in-place extras of OrderedDict that no ABC names.
_MUTATORS = (*sorted(name for name in set(vars(MutableMapping)) - set(vars(Mapping))
                     if callable(getattr(MutableMapping, name))), "move_to_end", "__ior__")


# --------------------------------------------------------------------------- Params


class Params(dict):
    """One point of a parameter space: a ``dict`` from parameter names to values.

    Keys keep the order of the space.  Unlike a plain dict, a ``Params`` is
    hashable (so points can be put in sets or used as dict keys): the hash is
    that of the set of its items, so it agrees with dict equality (which
    ignores order); values that are not hashable (e.g. lists) are hashed
    through their ``repr``.  Do not
    mutate a ``Params`` after using it as a key.
    """

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset([(k, _hashable(v)) for k, v in self.items()]))

    def __repr__(self) -> str:
        if all(isinstance(k, str) and k.isidentifier() for k in self):
            inner = ", ".join(f"{k}={v!r}" for k, v in self.items())
            return f"Params({inner})"
        return f"Params({dict.__repr__(self)})"


def _hashable(value: Any) -> Any:
    """Returns ``value`` if it is hashable, else a hashable stand-in for it."""
    try:
        hash(value)
    except TypeError:
        return ("__unhashable__", type(value).__name__, repr(value))
    return value


# --------------------------------------------------------------------- value helpers


def _is_distribution(value: Any) -> bool:
    """Tells whether ``value`` is a distribution (an object with ``rvs``)."""
    return not isinstance(value, type) and callable(getattr(value, "rvs", None))


def _to_python(value: Any) -> Any:
    """Converts numpy scalars and arrays to plain Python objects."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def _sorted_set(values: Iterable[Any]) -> list[Any]:
    """Returns the elements of a set in a deterministic order."""
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _promote(value: Any) -> Any:
    """Turns a user-given value into a range: the distribution itself, a ``range``, or a
    list/tuple of plain values (possibly empty: an empty space)."""
    if _is_distribution(value):
        return value
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        return [value.item()]
    if isinstance(value, _SINGLE_TYPES) or not isinstance(value, Iterable):
        return [value]
    if isinstance(value, range):
        result: Sequence[Any] = value
    elif isinstance(value, np.ndarray):
        result = value.tolist()
    elif isinstance(value, tuple):
        result = tuple(_to_python(v) for v in value)
    elif isinstance(value, (set, frozenset)):
        result = [_to_python(v) for v in _sorted_set(value)]
    else:
        result = [_to_python(v) for v in value]
    return result


def _check_name(key: Any) -> None:
    """Raises ParamSpaceError unless ``key`` is a str.

    Any string names a parameter; only templates restrict which names they can reference
    (see ``render.py``), where that restriction bites.
    """
    if not isinstance(key, str):
        raise ParamSpaceError(
            f"parameter name {key!r} is a {type(key).__name__}; names must be strings, "
            f"e.g. {str(key)!r}"
        )


def _merge_args(ranges: Any, kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Combines the positional mapping and keyword arguments of ParamSpace()."""
    if ranges is None:
        return list(kwargs.items())
    if isinstance(ranges, Mapping):
        items = [(k, ranges[k]) for k in ranges.keys()]
    else:
        try:
            items = list(dict(ranges).items())
        except (TypeError, ValueError) as exc:
            raise ParamSpaceError(
                "ParamSpace() takes a mapping (or pairs) from names to values, "
                f"not {type(ranges).__name__}"
            ) from exc
    shared = [k for k, _ in items if k in kwargs]
    if shared:
        raise ParamSpaceError(
            f"parameter(s) {', '.join(map(repr, shared))} given both in the mapping "
            "and as keyword arguments"
        )
    return items + list(kwargs.items())


# ------------------------------------------------------------------- random helpers


def _rng(seed: Any) -> np.random.Generator:
    """Returns a numpy Generator from None, an int or a Generator."""
    if isinstance(seed, (bool, np.bool_)):
        raise ParamSpaceError(f"seed must be None, an int or a numpy Generator, not {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise ParamSpaceError(
            f"seed must be None, an int or a numpy Generator, not {seed!r}"
        ) from exc


def _random_bits(rng: np.random.Generator, nbits: int, m: int) -> list[int]:
    """Draws ``m`` uniform Python ints of ``nbits`` random bits each."""
    nwords = -(-nbits // 64)
    words = rng.integers(0, 2**64 - 1, size=(nwords, m), dtype=np.uint64, endpoint=True)
    values = words[0].tolist()
    for row in words[1:]:
        values = [v << 64 | w for v, w in zip(values, row.tolist())]
    shift = nwords * 64 - nbits
    return [v >> shift for v in values] if shift else values


def _big_randints(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """Draws ``k`` uniform Python ints in ``[0, n)``, for any ``n >= 1``.

    Uses rejection sampling over ``bit_length(n - 1)`` random bits, whose
    acceptance rate is above 1/2.
    """
    nbits = max((n - 1).bit_length(), 1)
    out: list[int] = []
    while len(out) < k:
        need = k - len(out)
        out.extend(x for x in _random_bits(rng, nbits, need + need // 2 + 4) if x < n)
    del out[k:]
    return out


def _randints(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """Draws ``k`` uniform ints in ``[0, n)`` with replacement."""
    if n < _NUMPY_INT_LIMIT:
        return rng.integers(0, n, size=k).tolist()
    return _big_randints(rng, n, k)


def _distinct_randints(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """Draws ``k`` distinct uniform ints in ``[0, n)`` in O(k) time and memory."""
    if k >= _DENSE_FRACTION * n:  # then n <= 4 k, so this is O(k) too
        return rng.choice(n, size=k, replace=False).tolist()
    seen: set[int] = set()
    out: list[int] = []
    while len(out) < k:
        for x in _randints(rng, n, k - len(out)):
            if x not in seen:
                seen.add(x)
                out.append(x)
    return out


def _check_count(k: Any) -> int:
    """Validates a sample size."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or k < 0:
        raise ParamSpaceError(f"the number of samples must be a non-negative int, not {k!r}")
    return int(k)


def _draw_distributions(points: list[Params], keys: tuple[str, ...],
                        rng: np.random.Generator) -> None:
    """Replaces, in place, each distribution value of ``points`` by a fresh draw.

    Draws are vectorised per distinct distribution object with
    ``rvs(size=m, random_state=rng)``, falling back to one
    ``rvs(random_state=rng)`` call per draw if ``size`` is not supported.
    """
    groups: dict[int, tuple[Any, list[tuple[Params, str]]]] = {}
    for point in points:
        for key in keys:
            value = point.get(key)
            if _is_distribution(value):
                groups.setdefault(id(value), (value, []))[1].append((point, key))
    for dist, slots in groups.values():
        for (point, key), draw in zip(slots, _rvs(dist, len(slots), rng)):
            point[key] = draw


def _rvs(dist: Any, m: int, rng: np.random.Generator) -> list[Any]:
    """Returns ``m`` draws of ``dist`` as plain Python objects."""
    try:
        draws = np.asarray(dist.rvs(size=m, random_state=rng)).tolist()
    except TypeError:
        draws = None
    if not isinstance(draws, list) or len(draws) != m:
        draws = [_to_python(dist.rvs(random_state=rng)) for _ in range(m)]
    return draws


# ------------------------------------------------------------------------ ParamSpace


def _runs(sizes: list[int]) -> list[slice]:
    """Splits a grid's names into runs of consecutive names with at most ``_RUN_ROWS``
    sub-points together (a longer range makes a run of its own)."""
    starts, rows = [0], 1
    for j, n in enumerate(sizes):
        if rows * max(n, 1) > _RUN_ROWS and j > starts[-1]:
            starts.append(j)
            rows = 1
        rows *= max(n, 1)
    return [slice(a, b) for a, b in zip(starts, starts[1:] + [len(sizes)])]


class _Column(Sequence[dict[str, Any]]):
    """The one-name sub-points of a range too long to tabulate, made on demand."""

    def __init__(self, key: str, values: Sequence[Any]) -> None:
        self._key, self._values = key, values

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, j: Any) -> Any:
        return {self._key: self._values[j]}


def _refusal(name: str) -> Callable[..., Any]:
    """Returns the method that stands in for mutator ``name``: spaces are values, like tuples."""
    def refuse(self: ParamSpace, *args: Any, **kwargs: Any) -> Any:
        raise ParamSpaceError(
            f"{type(self).__name__} is immutable ({name} would change it); build a new one, "
            "e.g. ParamSpace(space, name=values), or combine spaces with + and *"
        )
    refuse.__name__ = refuse.__qualname__ = name
    return refuse


def _immutable(cls: type[ParamSpace]) -> type[ParamSpace]:
    """Replaces every mutator of the mapping (see ``_MUTATORS``) with a refusal."""
    for name in _MUTATORS:
        setattr(cls, name, _refusal(name))
    return cls


@_immutable
class ParamSpace(OrderedDict):
    """A grid of parameters: the Cartesian product of one range per parameter.

    ``ParamSpace`` is an (immutable) ``OrderedDict`` from parameter names to
    ranges, and a sequence of :class:`Params` points:

    * ``space['name']`` is the range of ``name``; ``space[i]`` (an int, numpy
      ints included; negative counts from the end) is the i-th point, decoded
      directly; ``space[a:b]`` is a list of points.
    * ``len(space)`` is the number of points (use :attr:`size` for spaces with
      more than ``sys.maxsize`` points); iteration yields the points in the
      order of ``itertools.product`` over the ranges (the last name varies
      fastest).
    * ``keys()``, ``values()``, ``items()`` and ``'name' in space`` are those of
      the mapping.

    Values are promoted to ranges: a str, bytes, number, bool, None or dict is
    a single value; a range, list or tuple is kept (numpy scalars inside
    become Python scalars); a numpy array becomes a list of Python values; a
    set is sorted; any other iterable (e.g. a generator) becomes a list.  An
    object with an ``rvs`` method is a distribution (see :meth:`sample`).

    Composite spaces (``+``, ``*``, ``k *``) are subclasses; for them, the
    mapping gives, for each name, its range if the same in every part, else
    the list of its distinct values.

    Args:
        ranges: an optional mapping (or iterable of pairs) from names to values.
        **kwargs: more names and values.

    Raises:
        ParamSpaceError: if a name is not a string or is given twice.
    """

    __array_ufunc__ = None  # so that numpy ints defer to our __rmul__

    _keys: tuple[str, ...]  # the names, in order
    _size: int  # the number of points, a distribution counting as one value
    _dist_keys: tuple[str, ...]  # the names whose value is a distribution (in some part)

    def __init__(self, ranges: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
                 /, **kwargs: Any) -> None:
        items = []
        for key, value in _merge_args(ranges, kwargs):
            _check_name(key)
            items.append((key, _promote(value)))
        self._init_grid(items)

    # ---------------------------------------------------------------- construction

    def _init_grid(self, items: list[tuple[str, Any]]) -> None:
        """Stores validated, promoted items (a distribution counts as one value)."""
        self._set_items(items)
        self._keys = tuple(k for k, _ in items)
        self._values = tuple((v,) if _is_distribution(v) else v for _, v in items)
        self._size = math.prod(map(len, self._values))
        self._dist_keys = tuple(k for k, v in items if _is_distribution(v))

    def _set_items(self, items: Iterable[tuple[str, Any]]) -> None:
        """Fills the underlying mapping (bypassing immutability)."""
        OrderedDict.__init__(self)
        for key, value in items:
            OrderedDict.__setitem__(self, key, value)

    @classmethod
    def _from_items(cls, items: list[tuple[str, Any]]) -> ParamSpace:
        """Builds a grid from already validated and promoted items."""
        space = cls.__new__(cls)
        space._init_grid(items)
        return space

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self.items()),))

    # ----------------------------------------------------------------- properties

    @property
    def size(self) -> int:
        """The number of points, as a Python int (may exceed ``sys.maxsize``).

        Raises:
            ParamSpaceError: if the space contains distributions.
        """
        self._check_enumerable()
        return self._size

    @property
    def distribution_keys(self) -> tuple[str, ...]:
        """The names whose value is a distribution (in some part, for composites)."""
        return self._dist_keys

    def _check_enumerable(self) -> None:
        """Raises ParamSpaceError if the space contains distributions."""
        if self._dist_keys:
            names = ", ".join(map(repr, self._dist_keys))
            raise ParamSpaceError(
                f"this space contains distributions (parameter(s) {names}): it has no "
                "length and cannot be iterated or indexed; use sample(k) instead"
            )

    # ----------------------------------------------------------- sequence protocol

    def __len__(self) -> int:
        self._check_enumerable()
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Params]:
        self._check_enumerable()
        return self._iter()

    def _iter(self) -> Iterator[Params]:
        """Builds each point from ready-made (name, value) pairs: faster than dict(zip(...))."""
        pairs = [[(key, value) for value in values]
                 for key, values in zip(self._keys, self._values)]
        return map(Params, product(*pairs))

    def __getitem__(self, key: Any) -> Any:
        if type(key) is int and 0 <= key < self._size and not self._dist_keys:
            return self._point(key)  # the common case skips _index's checks, for speed
        if isinstance(key, str):
            return dict.__getitem__(self, key)
        if isinstance(key, slice):
            self._check_enumerable()
            return [self._point(i) for i in range(self._size)[key]]
        return self._point(self._index(key))

    def _index(self, key: Any) -> int:
        """Validates a point index and makes it non-negative."""
        if type(key) is not int:
            if isinstance(key, (bool, np.bool_)):
                raise TypeError("ParamSpace indices must be ints or parameter names, not bool")
            try:
                key = operator.index(key)
            except TypeError:
                raise TypeError(
                    "ParamSpace indices must be ints or parameter names, "
                    f"not {type(key).__name__}"
                ) from None
        self._check_enumerable()
        i = key + self._size if key < 0 else key
        if not 0 <= i < self._size:
            raise IndexError(f"index {key} out of range for a space of {self._size} points")
        return i

    def _point(self, i: int) -> Params:
        """Decodes point ``i`` (``0 <= i < _size``; distributions left undrawn) digit by digit."""
        point = Params()
        for subpoints, stride, size in self._digits:
            point.update(subpoints[i // stride % size])
        return point

    @cached_property
    def _digits(self) -> tuple[tuple[Sequence[dict[str, Any]], int, int], ...]:
        """(sub-points, stride, size) per run of names: merging a few dicts keeps space[i] fast."""
        sizes = [len(v) for v in self._values]
        digits = []
        for run in _runs(sizes):
            names, values, size = self._keys[run], self._values[run], math.prod(sizes[run])
            subpoints = ([dict(zip(names, t)) for t in product(*values)] if size <= _RUN_ROWS
                         else _Column(names[0], values[0]))
            digits.append((subpoints, math.prod(sizes[run.stop:]), size))
        return tuple(digits)

    # -------------------------------------------------------------------- sampling

    def sample_indices(self, k: int, replace: bool = False, seed: Any = None) -> list[int]:
        """Draws ``k`` point indices uniformly at random.

        Without replacement the indices are distinct; this takes O(k) time and
        memory whatever the size of the space (no enumeration).

        Args:
            k: the number of indices.
            replace: whether an index may be drawn more than once.
            seed: None, an int or a ``numpy.random.Generator``.

        Returns:
            A list of Python ints in ``[0, size)``, in the order drawn.

        Raises:
            ParamSpaceError: if ``k`` is invalid, exceeds the number of points
                without replacement, or the space contains distributions.
        """
        self._check_enumerable()
        return self._draw_indices(_check_count(k), replace, _rng(seed))

    def _draw_indices(self, k: int, replace: bool, rng: np.random.Generator) -> list[int]:
        """Draws indices of the discrete skeleton (distributions count once)."""
        n = self._size
        if k == 0:
            return []
        if replace and n > 0:
            return _randints(rng, n, k)
        if n == 0:
            raise ParamSpaceError(
                f"cannot sample {k} points from an empty space (0 points: some parameter has an "
                "empty range); give every parameter at least one value, or ask for sample(0)"
            )
        if k > n:
            raise ParamSpaceError(
                f"cannot sample {k} distinct points from a space of only {n} points; "
                "ask for fewer or use replace=True"
            )
        return _distinct_randints(rng, n, k)

    def sample(self, k: int, replace: bool = False, seed: Any = None) -> list[Params]:
        """Draws ``k`` points at random.

        For a space without distributions, points are drawn uniformly by
        index (so a sum space is sampled in proportion to its parts' sizes);
        without replacement they are ``k`` distinct points (distinct indices),
        chosen in O(k) time and memory.

        For a space with distributions (random search), ``replace`` is
        ignored: the discrete parameters are drawn with replacement (a
        distribution counting as a single value) and each distribution
        parameter gets a fresh draw ``dist.rvs(size=..., random_state=rng)``
        for every point.  Drawn numpy values are returned as Python scalars.

        Args:
            k: the number of points.
            replace: whether a point may be drawn more than once.
            seed: None, an int or a ``numpy.random.Generator``; the same seed
                gives the same points.

        Returns:
            A list of ``k`` :class:`Params`.

        Raises:
            ParamSpaceError: if ``k`` is not a non-negative int, or is larger
                than the number of points without replacement.
        """
        k = _check_count(k)
        rng = _rng(seed)
        if self._dist_keys:
            points = [self._point(i) for i in self._draw_indices(k, True, rng)]
            _draw_distributions(points, self._dist_keys, rng)
            return points
        return [self._point(i) for i in self._draw_indices(k, replace, rng)]

    # --------------------------------------------------------------------- algebra

    def __add__(self, other: Any) -> ParamSpace:
        if not isinstance(other, ParamSpace):
            return NotImplemented
        return SumSpace(self, other)

    def __radd__(self, other: Any) -> ParamSpace:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # so that sum(spaces) works
        return NotImplemented

    def __mul__(self, other: Any) -> ParamSpace:
        if isinstance(other, ParamSpace):
            if type(self) is ParamSpace and type(other) is ParamSpace:
                _check_disjoint(self, other)
                return ParamSpace._from_items(list(self.items()) + list(other.items()))
            return ProductSpace(self, other)
        if isinstance(other, (numbers.Number, np.generic)):
            return RepeatSpace(self, other)
        return NotImplemented

    def __rmul__(self, other: Any) -> ParamSpace:
        if isinstance(other, (numbers.Number, np.generic)):
            return RepeatSpace(self, other)
        return NotImplemented

    def __or__(self, other: Any) -> Any:
        """No ``|``: spaces merge with ``*`` (disjoint names) or ``+`` (same names)."""
        return NotImplemented

    __ror__ = __or__

    # ------------------------------------------------------------ equality, repr

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, ParamSpace) and type(other) is not type(self):
            return False
        return OrderedDict.__eq__(self, other)

    def __ne__(self, other: Any) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if all(k.isidentifier() for k in self._keys):
            inner = ", ".join(f"{k}={v!r}" for k, v in self.items())
        else:
            inner = dict.__repr__(dict(self.items()))
        return f"{type(self).__name__}({inner})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Pretty-prints (IPython, hypothesis) with the repr, not as a dict."""
        printer.text(repr(self))

    # ------------------------------------------------------------ mapping constructors

    def copy(self) -> ParamSpace:
        """Returns an equal space (spaces are immutable, so rarely needed)."""
        factory, args = self.__reduce__()
        return factory(*args)

    @classmethod
    def fromkeys(cls, keys: Iterable[str], value: Any = None) -> ParamSpace:
        """Builds a grid giving every name in ``keys`` the same ``value``."""
        return ParamSpace(dict.fromkeys(keys, value))


# ------------------------------------------------------------------------ composites


def _check_disjoint(a: ParamSpace, b: ParamSpace) -> None:
    """Raises ParamSpaceError if ``a`` and ``b`` share parameter names."""
    shared = [k for k in a.keys() if k in b]
    if shared:
        raise ParamSpaceError(
            "cannot multiply spaces that share parameter(s) "
            f"{', '.join(map(repr, shared))}: a product needs disjoint names "
            "(use + to chain spaces with the same names)"
        )


def _check_same_keys(a: ParamSpace, b: ParamSpace) -> None:
    """Raises ParamSpaceError unless ``a`` and ``b`` have the same parameter names."""
    only_a = [k for k in a.keys() if k not in b]
    only_b = [k for k in b.keys() if k not in a]
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"only in the left: {', '.join(map(repr, only_a))}")
        if only_b:
            parts.append(f"only in the right: {', '.join(map(repr, only_b))}")
        raise ParamSpaceError(
            "cannot add spaces with different parameter names (" + "; ".join(parts)
            + "); use * to combine spaces with disjoint names"
        )


def _wrap(space: ParamSpace) -> str:
    """The repr of ``space``, parenthesised if it is a composite."""
    text = repr(space)
    return text if type(space) is ParamSpace else f"({text})"


def _distinct(ranges: list[Any]) -> Any:
    """Merges ranges: the range itself if they are all equal, else distinct values."""
    first = ranges[0]
    if all(r is first or (type(r) is type(first) and r == first) for r in ranges[1:]):
        return first
    seen: set[Any] = set()
    out = []
    for value in chain.from_iterable((r,) if _is_distribution(r) else r for r in ranges):
        marker = (type(value), _hashable(value))
        if marker not in seen:
            seen.add(marker)
            out.append(value)
    return out


def _reorderer(keys: tuple[str, ...], part: ParamSpace) -> Callable[[Params], Params] | None:
    """Returns a function putting a part's points in ``keys`` order, or None if not needed."""
    if part._keys == keys:
        return None

    def reorder(point: Params) -> Params:
        return Params(zip(keys, map(point.__getitem__, keys)))

    return reorder


class _Composite(ParamSpace):
    """A space made of parts (``_parts``), by which it pickles and compares."""

    _parts: tuple[Any, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._parts)

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and self._parts == other._parts


class SumSpace(_Composite):
    """The concatenation of spaces with the same parameter names (``a + b``).

    Points are those of each part in turn, with the names in the first part's
    order.  For a name whose range differs between parts, ``space[name]`` is
    the list of its distinct values.

    Args:
        *parts: the spaces (nested sums are flattened).

    Raises:
        ParamSpaceError: if the parts' names differ (naming the differing ones).
    """

    def __init__(self, *parts: ParamSpace) -> None:  # noqa: D107 (documented above)
        flat: list[ParamSpace] = []
        for part in parts:
            if not isinstance(part, ParamSpace):
                raise ParamSpaceError(f"can only add ParamSpaces, not {type(part).__name__}")
            if flat:
                _check_same_keys(flat[0], part)
            flat.extend(part._parts if type(part) is SumSpace else (part,))
        if not flat:
            raise ParamSpaceError("a SumSpace needs at least one part")
        keys = flat[0]._keys
        self._set_items((k, _distinct([dict.__getitem__(p, k) for p in flat])) for k in keys)
        self._parts = tuple(flat)
        self._keys = keys
        self._reorder = tuple(_reorderer(keys, p) for p in flat)
        self._offsets = [0, *accumulate(p._size for p in flat)]  # where each part starts
        self._size = self._offsets[-1]
        self._dist_keys = tuple(k for k in keys if any(k in p._dist_keys for p in flat))

    def _iter(self) -> Iterator[Params]:
        return chain.from_iterable(
            iter(p) if f is None else map(f, p) for p, f in zip(self._parts, self._reorder)
        )

    def _point(self, i: int) -> Params:
        j = bisect.bisect_right(self._offsets, i) - 1
        point = self._parts[j]._point(i - self._offsets[j])
        f = self._reorder[j]
        return point if f is None else f(point)

    def __repr__(self) -> str:
        return " + ".join(map(_wrap, self._parts))


class ProductSpace(_Composite):
    """The Cartesian product of two spaces with disjoint names (``a * b``).

    Each point of ``a`` (outer) is merged with each point of ``b`` (inner, so
    ``b`` varies fastest); names are ``a``'s then ``b``'s.  ``a * b`` of two
    plain grids gives a plain grid instead, with the same points.

    Args:
        outer: the space whose points change slowest.
        inner: the space whose points change fastest.

    Raises:
        ParamSpaceError: if the spaces share names (naming them).
    """

    def __init__(self, outer: ParamSpace, inner: ParamSpace) -> None:  # noqa: D107
        for part in (outer, inner):
            if not isinstance(part, ParamSpace):
                raise ParamSpaceError(
                    f"can only multiply ParamSpaces, not {type(part).__name__}")
        _check_disjoint(outer, inner)
        self._set_items(chain(outer.items(), inner.items()))
        self._parts = (outer, inner)
        self._keys = outer._keys + inner._keys
        self._size = outer._size * inner._size
        self._dist_keys = outer._dist_keys + inner._dist_keys

    def _iter(self) -> Iterator[Params]:
        outer, inner = self._parts
        return (Params(a, **b) for a in outer for b in inner)

    def _point(self, i: int) -> Params:
        outer, inner = self._parts
        q, r = divmod(i, inner._size)
        return Params(outer._point(q), **inner._point(r))

    def __repr__(self) -> str:
        return " * ".join(map(_wrap, self._parts))


class RepeatSpace(_Composite):
    """A space repeated ``times`` times (``times * space`` or ``space * times``).

    Iteration runs through the whole space ``times`` times over.

    Args:
        space: the space to repeat (a nested repeat is flattened).
        times: a non-negative int (numpy ints allowed; not bool or float).

    Raises:
        ParamSpaceError: if ``times`` is not a non-negative int.
    """

    def __init__(self, space: ParamSpace, times: int) -> None:  # noqa: D107
        if (isinstance(times, (bool, np.bool_)) or not isinstance(times, numbers.Integral)
                or times < 0):
            raise ParamSpaceError(
                f"a space can only be repeated a non-negative int number of times, "
                f"not {times!r} ({type(times).__name__})"
            )
        if not isinstance(space, ParamSpace):
            raise ParamSpaceError(f"can only repeat a ParamSpace, not {type(space).__name__}")
        times = int(times)
        if type(space) is RepeatSpace:
            space, times = space._base, space._times * times
        self._set_items(space.items())
        self._parts = (space, times)
        self._base, self._times = space, times
        self._keys = space._keys
        self._size = space._size * times
        self._dist_keys = space._dist_keys

    def _iter(self) -> Iterator[Params]:
        return chain.from_iterable(repeat(self._base, self._times))

    def _point(self, i: int) -> Params:
        return self._base._point(i % self._base._size)

    def __repr__(self) -> str:
        return f"{self._times} * {_wrap(self._base)}"


# ------------------------------------------------------------------ submit's argument


def as_points(space: Any) -> Iterable[Mapping[str, Any]]:
    """The points of what ``ps.submit`` accepts as a space, checked before any is used.

    A ParamSpace; a mapping of names to ranges (a ``ParamSpace`` of it); a pandas
    DataFrame (one point per row, the columns its names); or an iterable of dicts.

    Raises:
        ParamSpaceError: for anything else, naming what is accepted.
    """
    accepted = ("a ParamSpace, a dict of names to ranges, a pandas DataFrame (one point per "
                "row), or an iterable of dicts")
    if isinstance(space, ParamSpace):
        return space
    if isinstance(space, Mapping):
        return ParamSpace(space)
    if type(space).__name__ == "DataFrame" and hasattr(space, "to_dict"):
        bad = [c for c in space.columns if not isinstance(c, str)]
        if bad:
            raise ParamSpaceError(f"DataFrame column {bad[0]!r} is not a string; name the columns "
                                  "after the parameters, e.g. df.columns = ['lr', 'depth']")
        return [Params((k, _to_python(v)) for k, v in row.items())
                for row in space.to_dict("records")]
    if isinstance(space, (str, bytes)) or not isinstance(space, Iterable):
        raise ParamSpaceError(f"the parameter space must be {accepted}, not {type(space).__name__}")
    return _checked_points(space, accepted)


def _checked_points(points: Iterable[Any], accepted: str) -> Iterator[Mapping[str, Any]]:
    for i, point in enumerate(points):
        if not isinstance(point, Mapping):
            raise ParamSpaceError(
                f"point {i} of the parameter space is a {type(point).__name__} ({point!r:.60}), "
                f"not a dict; the space must be {accepted}"
            )
        bad = [k for k in point if not isinstance(k, str)]
        if bad:
            raise ParamSpaceError(f"point {i} of the parameter space has a name {bad[0]!r} that "
                                  "is not a string; parameter names are strings")
        yield point
