"""Golden IR: the located IR of every program after the frontend and after the default
pipeline, and every stage `irnet dump --print-ir-after-all` prints for a small program,
compared with the expected text in tests/golden/. A change to the IR shows up as a readable
diff; after checking it, refresh the files with

    IRNET_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest
from conftest import PROGRAMS, ROOT

from irnet import cli, driver, stages
from irnet.cli import print_ir

GOLDEN = ROOT / "tests" / "golden"
STAGES = {"frontend": "", "pipeline": ",".join(driver.PIPELINE)}
SMALL = "tests/programs/stages.irn"
"""The program whose every stage of the cpu target has a golden file."""


def golden_path(program: Path, stage: str) -> Path:
    return GOLDEN / f"{program.stem}.{stage}.mlir"


def assert_matches_golden(actual: str, path: Path) -> None:
    if os.environ.get("IRNET_UPDATE_GOLDEN"):
        path.write_text(actual)
    expected = path.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True), str(path), "actual"
        )
    )
    assert actual == expected, f"IR differs from {path}:\n{diff}"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("program", PROGRAMS, ids=str)
def test_ir_matches_golden(program, stage):
    module = driver.load(program).module
    driver.run_passes(module, STAGES[stage])
    assert_matches_golden(print_ir(module), golden_path(program, stage))


def irnet(capsys, *args: str) -> str:
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def test_print_ir_after_all_shows_every_stage_of_the_cpu_target(capsys):
    """The IR after each pass, fuse-elementwise, plan-memory and emit-cpu included, is golden;
    the kernels that end the dump are the module `irnet compile` writes, whose text the
    emitter's own tests check (its golden would change with every emitter change)."""
    out = irnet(capsys, "dump", SMALL, "--print-ir-after-all")
    ir, kernels_header, kernels = out.partition(stages.header(stages.KERNELS) + "\n")
    assert_matches_golden(ir + kernels_header, GOLDEN / "dump" / "stages.after-all.mlir")
    headers = re.findall(r"^// -----// IR after ([\w-]+) //", ir, re.MULTILINE)
    assert headers == ["frontend", *driver.CPU_PIPELINE]
    assert kernels == irnet(capsys, "compile", SMALL)
    names = re.findall(r'cpu\.kernel = "(\w+)"', ir)
    assert names == ["k0_mul_add_relu", "k1_softmax"]
    assert all(f"\ndef {name}(" in kernels for name in names)


def test_canonicalize_folds_the_small_programs_constant_expression(capsys):
    after = irnet(capsys, "dump", SMALL, "--after", "canonicalize")
    assert "nn.exp" not in after and "nn.div" not in after
    folded = f'nn.constant dense<1.35914099> : tensor<f32> loc("{SMALL}":7:28)'  # at the `/`
    assert folded in after


def test_every_golden_file_belongs_to_a_program():
    expected = {golden_path(p, s).name for p in PROGRAMS for s in STAGES}
    assert {p.name for p in GOLDEN.glob("*.mlir")} <= expected
