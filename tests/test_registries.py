"""Every op of the `nn` dialect has every rule: a derivative, a reference implementation, a cpu
lowering and a cuda lowering, or a declared gap that gives a clear error.

Adding an op without one of its rules fails here, naming the op and the concern.
"""

from __future__ import annotations

import pytest
from op_cases import Case, floats
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr
from xdsl.traits import IsTerminator

from irnet import reference
from irnet.diagnostics import IrnError
from irnet.dialects import nn
from irnet.dialects.nn_vjp import VJP
from irnet.dialects.traits import Elementwise, NotDifferentiable, Reduction, ShapeOnly
from irnet.lowering.cpu_ops import CPU_LOWERINGS
from irnet.lowering.emit_cpu import emit_module
from irnet.lowering.emit_cuda import CUDA_LOWERINGS
from irnet.lowering.emit_function import lowering_of
from irnet.lowering.loop_nest import POINT_RULES

OPS = sorted(
    (op for op in nn.NN.operations if not op.has_trait(IsTerminator)), key=lambda op: op.name
)
"""The ops with rules of their own; a terminator (`nn.yield`) is its region's op's business."""

GAPS: dict[str, set[type[nn.NNOp]]] = {"reference": set(), "cpu": set(), "cuda": set()}
"""Ops a target does not run, on purpose (each compiles to the clear error tested below).
None today."""


def lowerable(op: type[nn.NNOp], lowerings) -> bool:
    """Whether a target with `lowerings` writes a site for `op`, and a loop nest can compute
    each of its elements if it is elementwise."""
    if lowering_of(op, lowerings) is None:
        return False
    trait = op.get_trait(Elementwise)
    return trait is None or trait.formula is not None or op in POINT_RULES


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_derivative_rule_or_declared_none(op):
    declared = op.has_trait(NotDifferentiable) or op.has_trait(ShapeOnly)
    assert (op in VJP) != declared, (
        f"{op.name} needs a derivative rule in dialects/nn_vjp.py (@rule) or one of the traits "
        "NotDifferentiable / ShapeOnly" + (", not both" if declared else "")
    )


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_reference_implementation(op):
    assert (op in reference.IMPLEMENTED_OPS) or (op in GAPS["reference"]), (
        f"{op.name} needs an @impl in irnet/reference.py, or an Elementwise formula"
    )


@pytest.mark.parametrize("target", ["cpu", "cuda"])
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_compiled_lowering(op, target):
    lowerings = {"cpu": CPU_LOWERINGS, "cuda": CUDA_LOWERINGS}[target]
    assert lowerable(op, lowerings) or op in GAPS[target], (
        f"{op.name} needs a {target} lowering: an Elementwise formula (or a POINT_RULES entry), "
        f"the Reduction trait, or a rule registered in lowering/cpu_ops.py"
    )


def test_traits_are_consistent():
    for op in OPS:
        trait = op.get_trait(Elementwise)
        if trait is not None:
            assert not op.has_trait(Reduction), op.name
            assert max(trait.shape_operands, default=-1) < len(op.get_irdl_definition().operands)


def test_a_missing_lowering_names_the_op_its_line_and_the_target(monkeypatch):
    """What a declared gap gives: the op, the `.irn` position it came from, the target."""
    monkeypatch.delitem(CPU_LOWERINGS.rules, nn.TransposeOp)
    case = Case("transpose", nn.TransposeOp, [("f32[2, 3]", floats((2, 3)))], {"perm": [1, 0]})
    fn = case.function("f")
    module = ModuleOp([fn])
    transpose = next(op for op in fn.walk() if isinstance(op, nn.TransposeOp))
    transpose.location = FileLineColLoc(StringAttr("model.irn"), IntAttr(7), IntAttr(5))
    emitted = emit_module(module)
    error = next(e.error for e in emitted.entries.values())
    assert isinstance(error, IrnError)
    text = str(error)
    assert "model.irn:7:5" in text and "nn.transpose" in text and "cpu" in text


def test_a_registry_refuses_a_second_rule_for_an_op():
    with pytest.raises(ValueError, match="nn.transpose has two cpu lowering rules"):
        CPU_LOWERINGS.register(nn.TransposeOp)(lambda f, op: None)


def test_the_cuda_registry_inherits_the_cpu_rules():
    assert CUDA_LOWERINGS.parent is CPU_LOWERINGS
    assert CUDA_LOWERINGS.get(nn.SliceOp) is CPU_LOWERINGS.get(nn.SliceOp)
    assert all(CUDA_LOWERINGS.get(op) is CPU_LOWERINGS.get(op) for op in CPU_LOWERINGS.rules)
