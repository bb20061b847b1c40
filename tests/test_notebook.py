"""examples/walkthrough.ipynb runs from top to bottom in a fresh kernel, and what it shows
(stored and fresh) reads well: figures, no error, no terminal escape codes."""
import pathlib
import re

import pytest

from conftest import fail_or_skip

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "walkthrough.ipynb"
TERMINAL_CODES = re.compile(r"\x1b\[|\r(?!\n)")


def texts(nb) -> list[str]:
    """Every text output of the notebook's code cells."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            found.append(output.get("text", ""))
            found += [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
            found += output.get("traceback", [])
    return found


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def check_outputs(nb) -> None:
    assert [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"] == []
    assert [t for t in texts(nb) if TERMINAL_CODES.search(t)] == []
    assert not [t for t in texts(nb) if "Warning" in t and "metrics not read" not in t]
    assert images(nb) >= 2   # ps.plot, ps.plot_history


def test_the_stored_notebook_carries_its_outputs():
    try:
        import nbformat
    except ImportError:
        fail_or_skip("nbformat is not installed: pip install '.[test]'")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code) and sum(bool(c.outputs) for c in code) >= len(code) - 2
    check_outputs(nb)
    assert "walkthrough-" not in "".join(texts(nb))   # not the scratch folder it ran in


@pytest.mark.slow
def test_the_notebook_runs_from_top_to_bottom(tmp_path):
    try:
        import nbformat
        import optuna  # noqa: F401   (the notebook's ps.optimize)
        from nbclient import NotebookClient
    except ImportError as exc:
        fail_or_skip(f"{exc.name} is not installed: pip install '.[test,search]'")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        cell.pop("outputs", None) if cell.cell_type == "code" else None
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    check_outputs(nb)
    assert (tmp_path / "sweep" / "report.html").is_file() and (tmp_path / "search" / "report.html").is_file()
    states = next(c for c in nb.cells if "value_counts" in c.source).outputs[0]["data"]["text/plain"]
    assert "FAILED" in states and "COMPLETED" in states
