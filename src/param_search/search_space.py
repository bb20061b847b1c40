"""A ParamSpace as an adaptive search sees it: one Optuna distribution per varying parameter.

The same space serves grid, random and adaptive search, so the conversion follows the
values the user already wrote: a list becomes a categorical choice, a ``range`` an integer
range (with its step), a scipy distribution a continuous (or, if discrete, integer) range
over its support (``loguniform`` on a log scale). Single values stay fixed: every trial
gets them, no sampler sees them. Optuna is imported here only, on first use.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ParamSpaceError
from .space import ParamSpace

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

#: The scipy distributions whose natural scale is logarithmic.
_LOG_NAMES = ("loguniform", "reciprocal")
#: What Optuna's categorical distribution can hold as a choice.
_PLAIN = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class SearchSpace:
    """The varying parameters as Optuna distributions, the fixed ones as values; choices that
    Optuna cannot hold (tuples, dicts, ...) are searched by their position in the list."""

    distributions: dict[str, "BaseDistribution"]
    fixed: dict[str, Any]
    by_position: dict[str, list[Any]]   # name -> its choices, where a trial holds an index
    order: tuple[str, ...]              # the space's names, in its order

    def params(self, trial_params: Mapping[str, Any]) -> dict[str, Any]:
        """A job's parameters from the values a sampler chose (in the space's order)."""
        values = {**self.fixed, **{k: self._decode(k, v) for k, v in trial_params.items()}}
        return {k: values[k] for k in self.order}

    def trial_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The sampler's values of a job's parameters (to tell a rebuilt study about it)."""
        return {k: self._encode(k, params[k]) for k in self.distributions}

    def _decode(self, name: str, value: Any) -> Any:
        if name in self.by_position:
            return self.by_position[name][value]
        return value.item() if hasattr(value, "item") else value

    def _encode(self, name: str, value: Any) -> Any:
        if name in self.by_position:
            return self.by_position[name].index(value)
        return value


def search_space(space: Mapping[str, Any]) -> SearchSpace:
    """Convert a ParamSpace (or a dict of the same values) to a :class:`SearchSpace`.

    Raises:
        ParamSpaceError: a composite space, an empty range, a distribution without a finite
            support, or no varying parameter at all.
    """
    if type(space) is not ParamSpace:
        if isinstance(space, ParamSpace) or not isinstance(space, Mapping):
            raise ParamSpaceError(
                f"adaptive search needs one plain ParamSpace (names to lists, ranges or distributions), "
                f"not a {type(space).__name__}; write the ranges in a single ps.ParamSpace(...)")
        space = ParamSpace(dict(space))
    distributions: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    by_position: dict[str, list[Any]] = {}
    for name, values in space.items():
        if hasattr(values, "rvs"):
            distributions[name] = _from_distribution(name, values)
        elif len(values) == 0:
            raise ParamSpaceError(f"parameter {name!r} has no values: give it at least one")
        elif len(values) == 1:
            fixed[name] = values[0]
        elif isinstance(values, range):
            distributions[name] = _from_range(values)
        else:
            distributions[name], choices = _from_list(values)
            if choices is not None:
                by_position[name] = choices
    if not distributions:
        raise ParamSpaceError(
            f"every parameter of this space has a single value ({', '.join(space.keys()) or 'none'}): there "
            "is nothing to search; give some a list, a range or a distribution, e.g. "
            "lr=scipy.stats.loguniform(1e-5, 1e-1)")
    return SearchSpace(distributions, fixed, by_position, tuple(space.keys()))


def _from_range(values: range) -> "BaseDistribution":
    from optuna.distributions import IntDistribution

    low, high = min(values[0], values[-1]), max(values[0], values[-1])
    return IntDistribution(low, high, step=abs(values.step))


def _from_list(values: Any) -> "tuple[BaseDistribution, list[Any] | None]":
    from optuna.distributions import CategoricalDistribution

    values = list(values)
    if all(isinstance(v, _PLAIN) for v in values) and len(set(map(repr, values))) == len(values):
        return CategoricalDistribution(values), None
    return CategoricalDistribution(list(range(len(values)))), values


def _from_distribution(name: str, dist: Any) -> "BaseDistribution":
    """A float (or int) range over a scipy distribution's support."""
    from optuna.distributions import FloatDistribution, IntDistribution

    support = getattr(dist, "support", None)
    low, high = support() if callable(support) else (None, None)
    if low is None or not (math.isfinite(low) and math.isfinite(high)):
        shown = f" (its support is {low} to {high})" if low is not None else ""
        raise ParamSpaceError(
            f"parameter {name!r} is a distribution without a finite range{shown}, which adaptive "
            "search cannot bound; use one with finite bounds, e.g. scipy.stats.uniform(low, width), "
            "scipy.stats.loguniform(low, high) or scipy.stats.randint(low, high)")
    family = getattr(getattr(dist, "dist", None), "name", "")
    if _is_discrete(dist):
        return IntDistribution(int(low), int(high))
    return FloatDistribution(float(low), float(high), log=family in _LOG_NAMES)


def _is_discrete(dist: Any) -> bool:
    from scipy import stats

    return isinstance(getattr(dist, "dist", None), stats.rv_discrete)
