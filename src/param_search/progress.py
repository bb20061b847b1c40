"""Progress bars that look right where they are shown: tqdm's bar on a terminal, a widget in
Jupyter when ipywidgets is installed, and otherwise in Jupyter whole lines of plain text.

tqdm.auto in a kernel without ipywidgets falls back to the terminal bar, whose carriage
returns (and, for stacked bars, cursor escape codes) a notebook keeps in its stored outputs.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def bar(total: int, desc: str, unit: str, enabled: bool = True, leave: bool = True) -> Any:
    """A tqdm-like bar (``update``, ``n``, ``set_postfix``, ``close``) for where it is shown."""
    if enabled and in_notebook():
        if _has_widgets():
            from tqdm.notebook import tqdm as widget_bar

            return widget_bar(total=total, desc=desc, unit=unit, leave=leave)
        return TextBar(total, desc, unit)
    from tqdm.std import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit=unit, leave=leave)


def quiet_auto_import() -> None:
    """Import tqdm.auto without its warning about a notebook lacking ipywidgets: libraries that
    import it (Optuna) would print that warning in every such notebook, where our bars are text."""
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        import tqdm.auto  # noqa: F401


def in_notebook() -> bool:
    """Inside a Jupyter kernel (not a terminal IPython, not plain Python)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _has_widgets() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


class TextBar:
    """Progress as whole lines of text, one every ``every`` seconds and one at the end."""

    def __init__(self, total: int, desc: str, unit: str, every: float = 10.0, file: TextIO | None = None):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.file = file or sys.stdout
        self.n, self.postfix, self.closed = 0, "", False
        self.start = self.shown_at = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.shown_at >= self.every:
            self._show()

    def set_postfix(self, values: dict[str, Any] | None = None, **more: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**(values or {}), **more}.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._show()

    def _show(self) -> None:
        from tqdm.std import tqdm

        self.shown_at = time.monotonic()
        line = tqdm.format_meter(self.n, self.total, self.shown_at - self.start, prefix=self.desc,
                                 unit=self.unit, postfix=self.postfix or None, ascii=True)
        print(line, file=self.file, flush=True)
