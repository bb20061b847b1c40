"""Benchmarks of param_search.space against its performance targets.

Run with ``python benchmarks/bench_space.py``; prints one line per target.
"""
from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    from param_search.space import ParamSpace
except ImportError:  # not installed: run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from param_search.space import ParamSpace

ITERATE_RATIO_TARGET = 1.1
GETITEM_US_TARGET = 2.0
SAMPLE_MS_TARGET = 10.0
SMALL_GRID_MS_TARGET = 5.0   # "well under 10 ms"


def best_of(func: Callable[[], object], repeats: int = 3) -> float:
    """Returns the best wall-clock time of ``repeats`` calls of ``func``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def verdict(ok: bool) -> str:
    """Formats a pass/fail flag."""
    return "OK" if ok else "FAIL"


def sci(n: int) -> str:
    """Formats a count like 1e6."""
    mantissa, exponent = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def grid(n_params: int, n_values: int) -> ParamSpace:
    """Returns a grid of ``n_params`` parameters with ``n_values`` values each."""
    return ParamSpace({f"p{j}": range(n_values) for j in range(n_params)})


def bench_iterate(space: ParamSpace) -> bool:
    """Times iterating ``space`` against itertools.product + dict(zip(...))."""
    keys = list(space.keys())
    values = list(space.values())

    def baseline() -> None:
        for t in itertools.product(*values):
            dict(zip(keys, t))

    def ours() -> None:
        for _ in space:
            pass

    base_times, our_times = [], []
    for _ in range(3):  # interleaved, so that machine noise hits both alike
        base_times.append(best_of(baseline, 1))
        our_times.append(best_of(ours, 1))
    base, mine = min(base_times), min(our_times)
    ratio = mine / base
    ok = ratio <= ITERATE_RATIO_TARGET
    print(f"iterate {sci(len(space))} grid: {mine:.2f} s vs itertools.product+dict(zip) "
          f"{base:.2f} s = {ratio:.2f}x (target <= {ITERATE_RATIO_TARGET}x) {verdict(ok)}")
    return ok


def bench_getitem(space: ParamSpace, calls: int = 200_000) -> bool:
    """Times ``space[i]`` at random indexes, per call."""
    indexes = np.random.default_rng(0).integers(0, len(space), calls).tolist()

    def ours() -> None:
        for i in indexes:
            space[i]

    per_call = best_of(ours) / calls * 1e6
    ok = per_call <= GETITEM_US_TARGET
    print(f"space[i] on {sci(len(space))} grid: {per_call:.2f} us per call "
          f"(target <= {GETITEM_US_TARGET} us) {verdict(ok)}")
    return ok


def bench_sample(space: ParamSpace, k: int = 1000) -> bool:
    """Times ``space.sample(k)`` without replacement."""
    seeds = iter(range(100))
    mine = best_of(lambda: space.sample(k, seed=next(seeds)), 5) * 1e3
    ok = mine <= SAMPLE_MS_TARGET
    print(f"sample({k}) without replacement from {sci(space.size)} space: {mine:.2f} ms "
          f"(target <= {SAMPLE_MS_TARGET} ms) {verdict(ok)}")
    return ok


def bench_small_grid(space: ParamSpace, k: int = 1000) -> bool:
    """``list(space)`` and ``sample(k)`` (with and without replacement) of a small grid,
    with digit names as the original package's own tests used."""
    times = {
        "list()": best_of(lambda: list(space), 20),
        f"sample({k})": best_of(lambda: space.sample(k, seed=1), 20),
        f"sample({k}, replace=True)": best_of(lambda: space.sample(k, replace=True, seed=1), 20),
    }
    ok = all(t * 1e3 <= SMALL_GRID_MS_TARGET for t in times.values())
    shown = ", ".join(f"{what} {t * 1e3:.2f} ms" for what, t in times.items())
    print(f"{len(space)}-point grid ({len(space.keys())} params x 5 values): {shown} "
          f"(target each <= {SMALL_GRID_MS_TARGET} ms) {verdict(ok)}")
    return ok


def main() -> bool:
    """Runs every benchmark; returns whether all targets were met."""
    small = grid(6, 10)
    digits = ParamSpace({str(j): range(5) for j in range(5)})
    results = [bench_iterate(small), bench_getitem(small), bench_sample(grid(10, 100)),
               bench_small_grid(digits)]
    return all(results)


if __name__ == "__main__":
    main()
