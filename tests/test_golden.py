"""Golden IR: the located IR of every program after the frontend and after the default
pipeline, compared with the expected text in tests/golden/. A change to the IR shows up as a
readable diff; after checking it, refresh the files with

    IRNET_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from conftest import PROGRAMS, ROOT

from irnet import driver
from irnet.cli import print_ir

GOLDEN = ROOT / "tests" / "golden"
STAGES = {"frontend": "", "pipeline": ",".join(driver.PIPELINE)}


def golden_path(program: Path, stage: str) -> Path:
    return GOLDEN / f"{program.stem}.{stage}.mlir"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("program", PROGRAMS, ids=str)
def test_ir_matches_golden(program, stage):
    module = driver.load(program).module
    driver.run_passes(module, STAGES[stage])
    actual = print_ir(module)
    path = golden_path(program, stage)
    if os.environ.get("IRNET_UPDATE_GOLDEN"):
        path.write_text(actual)
    expected = path.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True), str(path), "actual"
        )
    )
    assert actual == expected, f"IR differs from {path}:\n{diff}"


def test_every_golden_file_belongs_to_a_program():
    expected = {golden_path(p, s).name for p in PROGRAMS for s in STAGES}
    assert {p.name for p in GOLDEN.glob("*.mlir")} <= expected
