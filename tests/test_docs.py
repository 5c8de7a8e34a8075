"""The documentation keeps up with the code: docs/ops.md is exactly what scripts/gen_op_docs.py
generates, the hand-written references name every builtin, initialiser, train entry, pass and
canonicalisation pattern that exists, and every ```irn example in docs/ compiles."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT, subprocess_env
from xdsl.pattern_rewriter import RewritePattern

from irnet import driver, train_config
from irnet.builtins import BUILTINS
from irnet.dialects import nn, nn_patterns
from irnet.initializers import INITIALIZERS

DOCS = ROOT / "docs"
GENERATOR = ROOT / "scripts" / "gen_op_docs.py"


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def irn_examples() -> list:
    """Every ```irn block of the docs: complete programs that must compile."""
    return [
        pytest.param(block, id=f"{path.name}:{i}")
        for path in sorted(DOCS.glob("*.md"))
        for i, block in enumerate(re.findall(r"^```irn\n(.*?)^```", path.read_text(), re.M | re.S))
    ]


def test_ops_md_is_up_to_date():
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=ROOT,
    )
    assert result.returncode == 0, (
        f"{result.stderr.strip()}\n(regenerate with: .venv/bin/python scripts/gen_op_docs.py)"
    )


@pytest.mark.parametrize("op", list(nn.NN.operations), ids=lambda op: op.name)
def test_every_op_has_a_section_in_ops_md(op):
    assert f"## `{op.name}`\n" in read("ops.md")


@pytest.mark.parametrize("name", list(BUILTINS))
def test_every_builtin_is_in_the_language_reference(name):
    assert f"`{name}(" in read("language.md"), f"docs/language.md does not document {name}()"


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_every_initialiser_is_in_the_language_reference(name):
    assert f"`{name}`" in read("language.md"), f"docs/language.md does not list {name}"


@pytest.mark.parametrize("name", train_config.ENTRIES)
def test_every_train_entry_is_in_the_language_reference(name):
    assert f"`{name}`" in read("language.md"), f"docs/language.md does not list {name}"


@pytest.mark.parametrize("name", list(driver.PASSES))
def test_every_pass_is_in_the_pass_list(name):
    assert f"## `{name}`" in read("passes.md"), f"docs/passes.md has no section for {name}"


def canonicalization_patterns() -> list[str]:
    return sorted(
        name
        for name, value in vars(nn_patterns).items()
        if isinstance(value, type)
        and issubclass(value, RewritePattern)
        and value.__module__ == nn_patterns.__name__
    )


@pytest.mark.parametrize("name", canonicalization_patterns())
def test_every_canonicalization_pattern_is_in_the_pass_list(name):
    assert f"`{name}`" in read("passes.md"), f"docs/passes.md does not list {name}"


@pytest.mark.parametrize("source", irn_examples())
def test_irn_examples_in_the_docs_compile(source):
    driver.compile_source(source, "docs/example.irn", DOCS / "example.irn")


def test_the_python_api_examples_run(monkeypatch):
    """docs/python-api.md's `>>>` examples, run as doctests from the repository root."""
    import doctest

    monkeypatch.chdir(ROOT)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testfile(
        str(DOCS / "python-api.md"), module_relative=False, optionflags=flags, verbose=False
    )
    assert result.attempted > 30 and result.failed == 0


def test_interop_md_lists_exactly_the_onnx_ops_the_importer_reads():
    pytest.importorskip("onnx")
    from irnet.onnx_import import CONVERTERS

    text = " ".join(read("interop.md").split())
    listed = re.search(r"The supported ops: (.*?)\. ", text).group(1).split(", ")
    assert listed == sorted(CONVERTERS, key=str.lower)
