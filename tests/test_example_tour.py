"""examples/tour.ipynb, executed with nbclient at a small size in a kernel of this interpreter: no
cell fails, the loss curve is drawn, the predictions are far above chance. The notebook in the
repository holds no outputs."""

from __future__ import annotations

import re
import sys

import nbformat
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "examples" / "tour.ipynb"


def text_of(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_tour_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)


def test_tour_runs(monkeypatch) -> None:
    monkeypatch.setenv("IRNET_TOUR_EXAMPLES", "3000")
    monkeypatch.setenv("IRNET_TOUR_EPOCHS", "2")
    # as on a machine without a display: the notebook must still draw its plots inline
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # A kernelspec whose argv says "python" is launched with this interpreter by jupyter_client;
    # check that the kernel really runs in this environment, where irnet is installed.
    probe = nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)")
    notebook.cells.insert(0, probe)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails

    assert text_of(probe).strip() == sys.prefix
    cells = {cell.get("id"): cell for cell in notebook.cells}
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "(3000, 28, 28)" in text_of(cells["data"])
    assert text_of(cells["train"]).count("epoch ") == 2
    plots = [o for o in cells["plot"].outputs if "image/png" in o.get("data", {})]
    assert len(plots) == 1
    accuracy = re.search(r"test accuracy ([\d.]+)%", text_of(cells["predict"]))
    assert accuracy and float(accuracy.group(1)) > 70, text_of(cells["predict"])
