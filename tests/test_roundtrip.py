"""Printed IR parses back into the same IR: print -> parse -> print is byte-identical for every
program, after the frontend and after the default pipeline, with and without locations and in
the generic form."""

from __future__ import annotations

import pytest
from conftest import PROGRAMS
from xdsl.parser import Parser

from irnet import driver
from irnet.cli import print_ir

FORMS = {
    "located": dict(locations=True),
    "bare": dict(locations=False),
    "generic": dict(locations=True, generic=True),
}


def roundtrip(module, form) -> tuple[str, str]:
    text = print_ir(module, **FORMS[form])
    reparsed = Parser(driver.context(), text, "roundtrip.mlir").parse_module()
    reparsed.verify()
    return text, print_ir(reparsed, **FORMS[form])


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("stage", ["frontend", "pipeline"])
@pytest.mark.parametrize("program", PROGRAMS, ids=str)
def test_print_parse_print_is_identical(program, stage, form):
    module = driver.load(program).module
    if stage == "pipeline":
        driver.run_passes(module, ",".join(driver.PIPELINE))
    before, after = roundtrip(module, form)
    assert before == after


@pytest.mark.parametrize("program", PROGRAMS, ids=str)
def test_reparsed_ir_is_structurally_equal(program):
    module = driver.load(program).module
    text = print_ir(module)
    reparsed = Parser(driver.context(), text).parse_module()
    assert reparsed.is_structurally_equivalent(module)
