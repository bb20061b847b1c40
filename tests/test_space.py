"""Tests of param_search.space: grids, algebra, indexing and sampling."""
from __future__ import annotations

import ast
import collections
import itertools
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from param_search.errors import ParamSpaceError
from param_search.space import Params, ParamSpace, ProductSpace, RepeatSpace, SumSpace


class Uniform:
    """A minimal distribution: anything with ``rvs(size=..., random_state=...)``."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def rvs(self, size=None, random_state=None):
        return np.random.default_rng(random_state).uniform(self.low, self.high, size)


class ScalarOnly:
    """A distribution whose ``rvs`` takes no ``size`` (drawn one value at a time)."""

    def rvs(self, random_state=None):
        return np.float64(random_state.random())


# ----------------------------------------------------------------------------- README


def test_readme_snippet():
    import param_search as ps

    param_space = ps.ParamSpace(a=range(10), b=1e-3, c='hello', d=[True, False])
    for p in param_space: print(p)
    assert len(param_space) == 20
    assert len(param_space.sample(5, replace=False)) == 5
    param_space_a = ps.ParamSpace(type='a', param=[1,2,3])
    param_space_b = ps.ParamSpace(type='b', param=[4,5,6])
    param_space_c = ps.ParamSpace(other_param=1.5)
    param_space_ab = param_space_a + param_space_b   # sequential; keys must be identical
    param_space_ab = 10 * param_space_ab               # repeats the ranges
    param_space_abc = param_space_ab * param_space_c   # Cartesian product; keys must be disjoint
    assert len(param_space_abc) == 60


# ------------------------------------------------------------------------ construction


def test_values_are_promoted_to_ranges():
    space = ParamSpace(a=range(3), b=1e-3, c="hello", d=[True, False], e=None, f=b"x",
                       g=(1, 2), h={"x": 1}, i=True, j=np.float32(0.5))
    assert space["a"] == range(3)
    assert space["b"] == [1e-3]
    assert space["c"] == ["hello"]
    assert space["d"] == [True, False]
    assert space["e"] == [None]
    assert space["f"] == [b"x"]
    assert space["g"] == (1, 2)
    assert space["h"] == [{"x": 1}]
    assert space["i"] == [True]
    assert space["j"] == [0.5] and type(space["j"][0]) is float


def test_iterables_become_lists_and_numpy_becomes_python():
    space = ParamSpace(a=(x for x in [3, 1]), b={3, 1, 2}, c=np.arange(3), d=[np.int64(4)],
                       e={"b", 1})
    assert space["a"] == [3, 1]
    assert space["b"] == [1, 2, 3]
    assert space["c"] == [0, 1, 2]
    assert space["e"] == ["b", 1]  # unsortable set: sorted by repr, deterministic
    for point in space:
        assert type(point["c"]) is int and type(point["d"]) is int
        json.dumps(point)


def test_mapping_argument_and_keywords():
    space = ParamSpace({"a": [1, 2]}, b=3)
    assert list(space.keys()) == ["a", "b"]
    assert ParamSpace([("a", [1, 2])]) == ParamSpace(a=[1, 2])
    with pytest.raises(ParamSpaceError, match="'a'.*both"):
        ParamSpace({"a": 1}, a=2)
    with pytest.raises(ParamSpaceError, match="mapping"):
        ParamSpace(5)


@pytest.mark.parametrize("empty", [[], (), range(0), np.array([]), set(), iter([])])
def test_an_empty_range_is_an_empty_space(empty):
    space = ParamSpace(a=1, lr=empty)
    assert len(space) == 0 and space.size == 0 and not space
    assert list(space) == [] and space.sample(0) == [] and space[0:5] == []
    with pytest.raises(IndexError):
        space[0]
    with pytest.raises(ParamSpaceError, match="empty space.*sample\\(0\\)"):
        space.sample(1)
    with pytest.raises(ParamSpaceError, match="empty space"):
        space.sample(3, replace=True)


def test_empty_spaces_in_the_algebra():
    s, empty = ParamSpace(a=[1, 2, 3], b=4), ParamSpace(a=[], b=[5])
    assert len(s + empty) == len(empty + s) == 3 and list(empty + s) == list(s)
    assert (empty + s)[1] == s[1]
    assert len(s * ParamSpace(c=[])) == 0 and list(ParamSpace(c=[]) * s) == []
    assert len(5 * empty) == 0 and len(0 * s) == 0
    assert len(ParamSpace(a=[]) + ParamSpace(a=[])) == 0


@pytest.mark.parametrize("name", ["0", "1a", "a-b", "a b", "", "lr.rate", "x[0]", "é"])
def test_any_string_is_a_parameter_name(name):
    space = ParamSpace({name: range(3), "other": [1, 2]})
    assert len(space) == 6 and list(space.keys()) == [name, "other"]
    assert [p[name] for p in space] == [0, 0, 1, 1, 2, 2]
    assert space[5] == {name: 2, "other": 2}
    assert len(space.sample(4, seed=0)) == 4
    assert len(space + space) == 12 and len(space * ParamSpace(z=[1, 2])) == 12
    assert eval(repr(space), {"ParamSpace": ParamSpace, "range": range}) == space
    assert pickle.loads(pickle.dumps(space)) == space


def test_the_issue_example_of_odd_names():
    space = ParamSpace(**{"0": range(3), "lr-rate": [1, 2]})
    assert len(space) == 6 and space[3] == {"0": 1, "lr-rate": 2}
    assert len(2 * space + space) == 18


@pytest.mark.parametrize("name", [3, None, ("a",)])
def test_names_must_be_strings(name):
    with pytest.raises(ParamSpaceError, match="must be strings") as info:
        ParamSpace({name: 1})
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("dims", [{}, {"a": []}, {"a": 1}, {"a": [1]}, {"a": [1, 2]},
                                  {"a": 1, "b": 2}, {"a": [1, 2], "b": [3, 4]}])
def test_the_original_packages_dims(dims):
    space = ParamSpace(**dims)
    assert isinstance(space, collections.OrderedDict)
    assert set(space.keys()) == set(dims)
    for k, v in dims.items():
        assert space[k] == (v if isinstance(v, list) else [v])
    points = list(space)
    assert len(points) == len(space)
    assert all(p.keys() == space.keys() and all(p[k] in space[k] for k in p) for p in points)
    assert len(space + space) == 2 * len(space) and len(10 * space) == 10 * len(space)


@pytest.mark.parametrize("n_dims", range(6))
@pytest.mark.parametrize("n_vals", range(6))
def test_digit_named_grids_len_and_iteration(n_dims, n_vals):
    space = ParamSpace(**{str(k): range(n_vals) for k in range(n_dims)})
    assert len(space) == n_vals ** n_dims
    points = list(space)
    assert len(points) == n_vals ** n_dims
    if points:
        assert points[-1] == {str(k): n_vals - 1 for k in range(n_dims)}


def test_empty_space_has_one_empty_point():
    assert list(ParamSpace()) == [Params()]
    assert len(ParamSpace() * ParamSpace(a=[1, 2])) == 2


def test_spaces_are_immutable():
    space = ParamSpace(a=[1, 2])
    for mutate in (lambda: space.__setitem__("b", 1), lambda: space.__delitem__("a"),
                   lambda: space.update(b=1), lambda: space.pop("a"), space.clear,
                   space.popitem, lambda: space.setdefault("b", 1)):
        with pytest.raises(ParamSpaceError, match="immutable"):
            mutate()
    assert space.copy() == space


def test_every_ordereddict_mutator_is_refused():
    space = ParamSpace(a=[1, 2]) + ParamSpace(a=[3])
    extras = set(dir(collections.OrderedDict)) - set(dir(collections.abc.Mapping))
    readers = {"__dict__", "copy", "fromkeys", "__or__", "__ror__"}  # redefined, checked below
    mutators = {"__setitem__": ("b", 1), "__delitem__": ("a",), "update": ({"b": 1},),
                "pop": ("a",), "popitem": (), "clear": (), "setdefault": ("b", 1),
                "move_to_end": ("a",), "__ior__": ({"b": 1},)}
    assert extras == readers | set(mutators)
    for name, args in mutators.items():
        with pytest.raises(ParamSpaceError, match=f"immutable \\({name} .*build a new one"):
            getattr(space, name)(*args)
    with pytest.raises(ParamSpaceError, match="immutable"):
        space |= {"b": [1]}
    with pytest.raises(TypeError):
        space | space
    assert type(space | {"b": [1]}) is dict  # a plain dict: the space itself is unchanged
    assert list(space.keys()) == ["a"] and list(space) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert type(space.copy()) is SumSpace and space.copy() == space
    assert ParamSpace.fromkeys(["x", "y"], [1, 2]) == ParamSpace(x=[1, 2], y=[1, 2])


# ------------------------------------------------------------------------------ Params


def test_params_hash_repr_and_equality():
    p = Params(a=1, b=0.001)
    assert repr(p) == "Params(a=1, b=0.001)"
    assert p == {"b": 0.001, "a": 1}
    assert hash(p) == hash(Params(b=0.001, a=1))
    q = Params(a=[1, 2], b={"x": 1})
    assert hash(q) == hash(Params(a=[1, 2], b={"x": 1}))
    assert len({q, Params(a=[1, 2], b={"x": 1}), p}) == 2
    assert pickle.loads(pickle.dumps(q)) == q and type(pickle.loads(pickle.dumps(q))) is Params
    assert json.loads(json.dumps(p)) == p


# -------------------------------------------------------------------- grid as sequence


def test_iteration_matches_itertools_product():
    space = ParamSpace(a=range(3), b=["x", "y"], c=[0.5, 1.5, 2.5, 3.5])
    ranges = (range(3), "xy", [0.5, 1.5, 2.5, 3.5])
    expected = [dict(zip("abc", t)) for t in itertools.product(*ranges)]
    points = list(space)
    assert points == expected
    assert all(type(p) is Params and list(p) == ["a", "b", "c"] for p in points)
    assert len(space) == space.size == 24


def test_long_ranges_use_the_slow_path_correctly():
    space = ParamSpace(a=range(1500), b=[1, 2])
    assert list(space)[::97] == [space[i] for i in range(0, 3000, 97)]
    assert space[-1] == {"a": 1499, "b": 2}


@pytest.mark.parametrize("ranges", [
    {"a": range(3), "b": range(1500), "c": range(40), "d": range(40), "e": "x"},
    {"a": range(1024), "b": [1, 2], "c": range(2000)},
    {"a": [], "b": range(5000)},
    {},
])
def test_indexing_matches_iteration_across_long_and_short_ranges(ranges):
    space = ParamSpace(ranges)
    points = list(space)
    assert len(points) == len(space)
    for i in range(0, len(points), max(1, len(points) // 997)):
        assert space[i] == points[i] and list(space[i]) == list(space.keys())
        assert space[i - len(points)] == points[i]


def test_indexing():
    space = ParamSpace(a=range(10), b=[True, False])
    assert space[0] == {"a": 0, "b": True}
    assert space[3] == {"a": 1, "b": False}
    assert space[-1] == space[19] == {"a": 9, "b": False}
    assert space[np.int64(3)] == space[3]
    assert space[-20] == space[0]
    assert space[2:5] == list(space)[2:5]
    assert space["a"] == range(10)
    for bad in (20, -21):
        with pytest.raises(IndexError, match="20 points"):
            space[bad]
    for bad in (1.0, True, None, (1,)):
        with pytest.raises(TypeError, match="ints or parameter names"):
            space[bad]
    with pytest.raises(KeyError):
        space["zzz"]


def test_huge_space_len_size_and_index():
    space = ParamSpace({f"p{j}": range(100) for j in range(10)})
    assert space.size == 100**10
    assert space[-1] == {f"p{j}": 99 for j in range(10)}
    assert space[10**20 - 2]["p9"] == 98
    with pytest.raises(IndexError):
        space[10**20]


# ------------------------------------------------------------------------------ algebra


def test_sum_requires_same_keys_and_keeps_left_order():
    a = ParamSpace(x=[1, 2], y="a")
    b = ParamSpace(y="b", x=[3])
    s = a + b
    assert isinstance(s, ParamSpace) and isinstance(s, SumSpace)
    assert list(s.keys()) == ["x", "y"]
    assert list(s) == list(a) + [{"x": 3, "y": "b"}]
    assert all(list(p) == ["x", "y"] for p in s) and list(s[2]) == ["x", "y"]
    assert s["y"] == ["a", "b"]
    with pytest.raises(ParamSpaceError, match=r"only in the left: 'y'; only in the right: 'z'"):
        a + ParamSpace(x=1, z=2)
    assert sum([a, b, a]) == a + b + a and len(sum([a, b, a])) == 5


def test_product_requires_disjoint_keys():
    a = ParamSpace(x=[1, 2])
    b = ParamSpace(y=[3, 4], z=5)
    g = a * b
    assert type(g) is ParamSpace  # a product of grids is a grid
    assert list(g) == [dict(x=x, y=y, z=5) for x in (1, 2) for y in (3, 4)]
    with pytest.raises(ParamSpaceError, match="share parameter.*'y'"):
        ParamSpace(y=1, w=2) * b
    composite = (a + a) * b
    assert isinstance(composite, ProductSpace) and list(composite.keys()) == ["x", "y", "z"]
    assert list(composite) == [dict(x=x, y=y, z=5) for x in (1, 2, 1, 2) for y in (3, 4)]
    with pytest.raises(ParamSpaceError, match="share parameter.*'x'"):
        composite * a


def test_repeat():
    a = ParamSpace(x=[1, 2])
    for r in (3 * a, a * 3, np.int64(3) * a, a * np.int64(3)):
        assert isinstance(r, RepeatSpace)
        assert len(r) == 6 and list(r) == list(a) * 3
    assert len(0 * a) == 0 and list(0 * a) == [] and not (0 * a)
    assert 2 * (3 * a) == 6 * a
    for bad in (True, 2.0, -1, np.float64(2.0)):
        with pytest.raises(ParamSpaceError, match="non-negative int") as info:
            bad * a
        assert repr(bad) in str(info.value)
    with pytest.raises(TypeError):
        a * "x"


def test_composite_repr_keys_pickle_and_distinct_values():
    a = ParamSpace(type="a", param=[1, 2, 3])
    b = ParamSpace(type="b", param=[4, 5, 6])
    c = ParamSpace(other_param=1.5)
    abc = (10 * (a + b)) * ParamSpace(other=[1, 2]) + 2 * ((a + b) * ParamSpace(other=[3]))
    assert repr(a + b) == ("ParamSpace(type=['a'], param=[1, 2, 3])"
                           " + ParamSpace(type=['b'], param=[4, 5, 6])")
    assert repr(10 * (a + b)).startswith("10 * (ParamSpace(type=['a']")
    assert list(abc.keys()) == ["type", "param", "other"]
    assert abc["param"] == [1, 2, 3, 4, 5, 6] and abc["other"] == [1, 2, 3]
    assert len(abc) == 10 * 6 * 2 + 2 * 6
    clone = pickle.loads(pickle.dumps(abc))
    assert clone == abc and list(clone) == list(abc)
    assert clone != (a + b) and a != 1 * a
    assert len((a + b) * c) == 6
    for space in (a, a + b, (a + b) * c, 3 * a, ParamSpace(**{"lr-rate": [1]})):
        assert str(space) == f"{space}" == repr(space)


# ----------------------------------------------------------------------------- sampling


def test_sample_without_replacement():
    space = ParamSpace(a=range(10), b=[True, False])
    points = space.sample(20, seed=1)
    assert sorted(points, key=repr) == sorted(space, key=repr)
    assert space.sample(0) == []
    with pytest.raises(ParamSpaceError, match="only 20 points"):
        space.sample(21)
    assert len(space.sample(100, replace=True, seed=2)) == 100
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ParamSpaceError, match="non-negative int"):
            space.sample(bad)


def test_sample_seeds_reproduce():
    space = ParamSpace(a=range(1000), b=range(1000))
    assert space.sample(50, seed=3) == space.sample(50, seed=3)
    assert space.sample(50, seed=3) != space.sample(50, seed=4)
    assert space.sample(5, seed=np.random.default_rng(7)) == space.sample(5, seed=7)
    with pytest.raises(ParamSpaceError, match="seed"):
        space.sample(5, seed="x")


def test_sample_from_huge_space():
    space = ParamSpace({f"p{j}": range(100) for j in range(10)})
    indices = space.sample_indices(1000, seed=0)
    assert len(set(indices)) == 1000 and all(0 <= i < 10**20 for i in indices)
    assert max(indices) > 2**64  # big ints are really drawn
    points = space.sample(1000, seed=0)
    assert points == [space[i] for i in indices]
    assert space.sample(3, replace=True, seed=1) == space.sample(3, replace=True, seed=1)


def test_sample_from_sum_is_proportional_to_sizes():
    space = ParamSpace(kind="small", x=range(10)) + ParamSpace(kind="big", x=range(90))
    kinds = collections.Counter(p["kind"] for p in space.sample(2000, replace=True, seed=0))
    assert 0.05 < kinds["small"] / 2000 < 0.15


# ------------------------------------------------------------------------ distributions


def test_distributions_can_only_be_sampled():
    space = ParamSpace(lr=Uniform(0.0, 1.0), opt=["adam", "sgd"], wd=Uniform(5.0, 6.0))
    assert space.distribution_keys == ("lr", "wd")
    for action in (lambda: len(space), lambda: list(space), lambda: space[0],
                   lambda: space.size, lambda: space.sample_indices(1)):
        with pytest.raises(ParamSpaceError, match=r"distributions \(parameter\(s\) 'lr', 'wd'\)"):
            action()
    with pytest.raises(ParamSpaceError, match="use sample"):
        len(space)
    points = space.sample(50, seed=0)  # more than the 2 discrete points: replace is ignored
    assert len(points) == 50 and len({p["lr"] for p in points}) == 50
    assert all(type(p["lr"]) is float and 0 <= p["lr"] < 1 and 5 <= p["wd"] < 6 for p in points)
    assert {p["opt"] for p in points} == {"adam", "sgd"}
    assert points == space.sample(50, seed=0)
    json.dumps(points)
    assert pickle.loads(pickle.dumps(space)).sample(3, seed=1) == space.sample(3, seed=1)


def test_distributions_in_composites_and_without_size():
    space = (ParamSpace(lr=ScalarOnly(), n=1) + ParamSpace(lr=[0.5], n=2)) * ParamSpace(s=[1, 2])
    assert space.distribution_keys == ("lr",)
    with pytest.raises(ParamSpaceError, match="'lr'"):
        iter(space)
    points = space.sample(40, seed=0)
    assert all(type(p["lr"]) is float for p in points)
    assert {p["lr"] for p in points if p["n"] == 2} == {0.5}


def test_scipy_distribution():
    stats = pytest.importorskip("scipy.stats")
    space = ParamSpace(lr=stats.loguniform(1e-5, 1e-1), opt=["adam", "sgd"])
    points = space.sample(20, seed=0)
    assert all(type(p["lr"]) is float and 1e-5 <= p["lr"] <= 1e-1 for p in points)
    assert points == space.sample(20, seed=0)


def test_space_module_does_not_import_scipy():
    import param_search.space as module

    tree = ast.parse(Path(module.__file__).read_text())
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not any(name.split(".")[0] == "scipy" for name in names)


# --------------------------------------------------------------------- property tests

NAMES = ["a", "b", "c", "d"]


@st.composite
def grids(draw, keys):
    keys = draw(st.permutations(sorted(keys)))
    ranges = {}
    for key in keys:
        n = draw(st.integers(0, 3))
        kind = draw(st.sampled_from(["range", "list", "scalar"]))
        ranges[key] = (range(n) if kind == "range" else
                       [f"{key}{j}" for j in range(n)] if kind == "list" else 7)
    return ParamSpace(ranges)


@st.composite
def spaces(draw, keys=frozenset(NAMES), depth=3):
    kinds = ["grid"] + (["sum", "repeat"] + (["product"] if len(keys) > 1 else [])) * (depth > 0)
    kind = draw(st.sampled_from(kinds))
    if kind == "grid":
        return draw(grids(keys))
    if kind == "sum":
        return draw(spaces(keys, depth - 1)) + draw(spaces(keys, depth - 1))
    if kind == "repeat":
        times = draw(st.integers(0, 3))
        inner = draw(spaces(keys, depth - 1))
        return times * inner if draw(st.booleans()) else inner * times
    ordered = sorted(keys)
    left = set(draw(st.lists(st.sampled_from(ordered), min_size=1, max_size=len(keys) - 1,
                             unique=True)))
    return draw(spaces(frozenset(left), depth - 1)) * draw(spaces(keys - left, depth - 1))


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(spaces(), spaces(), st.integers(0, 3))
def test_lengths_of_algebra(a, b, k):
    assert len(a + b) == len(a) + len(b)
    assert len(k * a) == len(a * k) == k * len(a)
    assert list(k * a) == list(a) * k
    assert list(a + b) == list(a) + [Params((key, p[key]) for key in a.keys()) for p in b]


@FAST
@given(spaces(frozenset("ab")), spaces(frozenset("cd")))
def test_length_of_product(a, b):
    product = a * b
    assert len(product) == len(a) * len(b)
    assert list(product) == [Params(p, **q) for p in a for q in b]


@FAST
@given(spaces())
def test_indexing_matches_iteration(space):
    points = list(space)
    assert len(points) == len(space)
    assert all(list(p) == list(space.keys()) for p in points)
    for i, point in enumerate(points):
        assert space[i] == point
        assert space[i - len(points)] == point
    with pytest.raises(IndexError):
        space[len(points)]
    assert pickle.loads(pickle.dumps(space)) == space


@FAST
@given(spaces(), st.integers(0, 2**32 - 1), st.data())
def test_sampling_properties(space, seed, data):
    n = len(space)
    k = data.draw(st.integers(0, min(n, 40)))
    indices = space.sample_indices(k, seed=seed)
    assert len(set(indices)) == k and all(0 <= i < n for i in indices)
    sample = space.sample(k, seed=seed)
    assert sample == [space[i] for i in indices]
    assert collections.Counter(sample) <= collections.Counter(iter(space))
    assert sample == space.sample(k, seed=seed)
    if n:
        with_replacement = space.sample(k + 3, replace=True, seed=seed)
        assert len(with_replacement) == k + 3 and set(with_replacement) <= set(space)
    with pytest.raises(ParamSpaceError, match=f"only {n} points" if n else "empty space"):
        space.sample(n + 1, seed=seed)
