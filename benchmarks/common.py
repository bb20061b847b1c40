"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator


def best_of(n: int, fn, setup=None) -> float:
    times = []
    for _ in range(n):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg) if setup else fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def interleaved(n: int, a, b, setup=None) -> tuple[float, float]:
    """Best-of-n times of a and b, run alternately so that machine noise hits both alike."""
    ta, tb = [], []
    for _ in range(n):
        ta.append(best_of(1, a, setup))
        tb.append(best_of(1, b, setup))
    return min(ta), min(tb)


def report(label: str, ours: float, base: float, base_label: str, target: float, extra: str = "") -> None:
    """One line: our time, the baseline's, their ratio and whether it meets the target."""
    ratio = ours / base
    verdict = "OK" if ratio <= target else "MISSED"
    print(f"{label}: {seconds(ours)} vs {base_label} {seconds(base)} = {ratio:.2f}x (target <= {target}x) "
          f"{verdict}{extra}")


def seconds(t: float) -> str:
    """A duration with a unit that shows its digits (ms below 0.1 s)."""
    return f"{t * 1e3:.2f} ms" if t < 0.1 else f"{t:.3f} s"


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[str]:
    """A temporary folder for one benchmark run, removed afterwards."""
    root = tempfile.mkdtemp(prefix=prefix)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
