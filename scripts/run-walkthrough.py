"""Run examples/walkthrough.ipynb from top to bottom in a fresh kernel, in a scratch folder (its
job folders land there), and store the notebook with its outputs, so that it reads well unexecuted.

    .venv/bin/python scripts/run-walkthrough.py
"""
import pathlib
import shutil
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "walkthrough.ipynb"
CELL_TIMEOUT = 300


def run(notebook: pathlib.Path, folder: str) -> nbformat.NotebookNode:
    """The notebook executed in ``folder`` (raises CellExecutionError at the first failing cell)."""
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": folder}}).execute()
    return nb


if __name__ == "__main__":
    scratch = tempfile.mkdtemp(prefix="walkthrough-")
    try:
        nbformat.write(run(NOTEBOOK, scratch), NOTEBOOK)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"executed and stored {NOTEBOOK.name}", file=sys.stderr)
