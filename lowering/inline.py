"""`inline-functions`: replace every `func.call` by the callee's body, then drop the private
functions nothing refers to any more.

Inlined ops keep their own location and gain the call site's, MLIR style:
`loc(callsite("stdlib/nn.irn":9:12 at "mlp.irn":8:9))`, so an error deep inside `nn.dense` still
points at the user's line. Random streams are renumbered afterwards: one `dropout` template
called twice must draw two different masks.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import CallSiteLoc, ModuleOp, SymbolRefAttr
from xdsl.ir import Attribute
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable

from irnet.dialects import nn


def called_from(location: Attribute, caller: Attribute) -> Attribute:
    """`location` as seen from a call at `caller`, the innermost frame first."""
    if isinstance(location, CallSiteLoc):
        return CallSiteLoc(location.callee, called_from(location.caller, caller))
    return CallSiteLoc(location, caller)


def inline_call(call: func.CallOp, callee: func.FuncOp) -> None:
    body = callee.body.clone().block
    for arg in body.args:  # keep the caller's names, not the callee's parameter names
        arg.name_hint = None
    for op in body.walk():
        op.location = called_from(op.location, call.location)
    ret = body.last_op
    assert isinstance(ret, func.ReturnOp)
    # A callee may return one of its own arguments: that is the call's operand.
    operand_of = dict(zip(body.args, call.arguments))
    results = [operand_of.get(r, r) for r in ret.arguments]
    body.erase_op(ret, safe_erase=False)
    Rewriter.inline_block(body, InsertPoint.before(call), call.arguments)
    for old, new in zip(call.results, results, strict=True):
        old.replace_all_uses_with(new)
    Rewriter.erase_op(call)


def number_random_streams(function: func.FuncOp) -> None:
    """Give every draw its own seed: a seed seen before (the same template inlined twice)
    becomes the smallest unused one; distinct seeds, chosen or not, stay as they are."""
    draws = [op for op in function.walk() if isinstance(op, nn.RandomUniformOp)]
    taken = {nn.get_int(op.properties, "seed") for op in draws}
    seen: set[int] = set()
    for op in draws:
        seed = nn.get_int(op.properties, "seed")
        if seed in seen:
            seed = next(s for s in range(1, len(taken) + len(draws) + 2) if s not in taken)
            taken.add(seed)
            op.properties["seed"] = nn.int_attr(seed)
        seen.add(seed)


@dataclass(frozen=True)
class InlineFunctionsPass(ModulePass):
    name = "inline-functions"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        functions = [f for f in op.ops if isinstance(f, func.FuncOp)]
        for function in functions:
            if function.is_declaration:
                continue
            while calls := [c for c in function.walk() if isinstance(c, func.CallOp)]:
                for call in calls:
                    callee = SymbolTable.lookup_symbol(op, call.callee)
                    assert isinstance(callee, func.FuncOp), f"unknown callee {call.callee}"
                    inline_call(call, callee)
            number_random_streams(function)
        drop_unused_private_functions(op)


def drop_unused_private_functions(module: ModuleOp) -> None:
    still_used = referenced_symbols(module)
    for function in [f for f in module.ops if isinstance(f, func.FuncOp)]:
        visibility = function.sym_visibility
        private = visibility is not None and visibility.data == "private"
        if private and function.sym_name.data not in still_used:
            module.body.block.erase_op(function)


def referenced_symbols(module: ModuleOp) -> set[str]:
    """Symbols named by any op (derivative requests name the function they differentiate)."""
    return {
        attr.root_reference.data
        for op in module.walk()
        for attr in (*op.properties.values(), *op.attributes.values())
        if isinstance(attr, SymbolRefAttr)
    }
