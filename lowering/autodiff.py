"""`autodiff`: expand every `ad.grad` / `ad.value_and_grad` request into explicit `nn` IR.

For a request `ad.value_and_grad @f(args) wrt [i, ...]` the pass
1. takes `@f`'s body with its calls inlined and places a copy before the request (the forward
   sweep, located where `@f`'s ops are); each loop in it keeps what its steps compute;
2. finds the active values: those that depend on a `wrt` argument through differentiable ops
   and on which the result depends;
3. walks the forward ops backwards, asking each op's rule in `dialects/nn_vjp.py` for its
   operands' cotangents and summing the cotangents of values used more than once; every
   adjoint op is located at the forward op it differentiates (a loop's rule writes a backward
   loop, whose step runs steps 2 and 3 over the forward step, reading what it saved);
4. replaces the request's results with the forward values (the differentiated result, then
   any auxiliary ones) and the `wrt` arguments' cotangents.

Steps 1 to 3 are the sweeps at the end of `dialects/nn_vjp.py`, shared with the rule of
`nn.scan`. Requests whose function itself contains a request are expanded after it, so the
pass works on its own output: a gradient of a gradient (a Hessian-vector product) is an
ordinary request. Afterwards canonicalize, CSE and DCE leave only the work the gradients need.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable
from xdsl.transforms.canonicalize import CanonicalizePass
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination
from xdsl.transforms.dead_code_elimination import DeadCodeElimination

from irnet.diagnostics import error_at
from irnet.dialects.ad import GradRequestOp
from irnet.dialects.nn_builder import Emitter, NoDerivative
from irnet.dialects.nn_vjp import Activity, backpropagate, differentiable_edge, place_forward
from irnet.lowering.inline import drop_unused_private_functions, inline_call


def callee_of(module: ModuleOp, request: GradRequestOp) -> func.FuncOp:
    callee = SymbolTable.lookup_symbol(module, request.callee)
    assert isinstance(callee, func.FuncOp)
    return callee


def flat_body(module: ModuleOp, function: func.FuncOp) -> func.FuncOp:
    """A copy of `function` with every call inlined."""
    copy = function.clone()
    while calls := [op for op in copy.walk() if isinstance(op, func.CallOp)]:
        for call in calls:
            callee = SymbolTable.lookup_symbol(module, call.callee)
            assert isinstance(callee, func.FuncOp)
            inline_call(call, callee)
    return copy


def has_request(module: ModuleOp, function: func.FuncOp, seen: set[str] | None = None) -> bool:
    seen = set() if seen is None else seen
    if function.sym_name.data in seen:
        return False
    seen.add(function.sym_name.data)
    for op in function.walk():
        if isinstance(op, GradRequestOp):
            return True
        if isinstance(op, func.CallOp):
            callee = SymbolTable.lookup_symbol(module, op.callee)
            if isinstance(callee, func.FuncOp) and has_request(module, callee, seen):
                return True
    return False


def check_reachable(activity: Activity, arg: SSAValue, name: str, where: Operation) -> None:
    """Raise if `arg` reaches the output only through ops without derivatives."""
    influences = activity.backward(through_all=True)
    if arg not in influences or activity.outputs[0] in activity.forward({arg}, through_all=False):
        return
    active = activity.forward({arg}, through_all=False)
    for op in activity.ops:
        blocked = not differentiable_edge(op) and any(o in active for o in op.operands)
        if blocked and any(r in influences for r in op.results):
            raise error_at(
                f"the gradient with respect to '{name}' reaches the result only through "
                f"{op.name}, which has no derivative",
                op.location,
            )
    raise error_at(f"no derivative path from '{name}' to the result", where.location)


def expand(module: ModuleOp, request: GradRequestOp) -> None:
    body = flat_body(module, callee_of(module, request))
    block = body.body.block
    ret = block.last_op
    assert isinstance(ret, func.ReturnOp)
    ops = [op for op in block.ops if op is not ret]
    activity = Activity(ops, [ret.arguments[0]])
    wrt = request.wrt_indices
    for i in wrt:
        name = block.args[i].name_hint or f"#{i}"
        check_reachable(activity, block.args[i], name, request)

    # Forward sweep: the callee's ops, placed before the request.
    at = InsertPoint.before(request)
    placed: dict[SSAValue, SSAValue] = dict(zip(block.args, request.args))
    pairs = place_forward(ops, placed, at)
    output = ret.arguments[0]

    # Reverse sweep: cotangents keyed by the callee's values, built from the placed ones.
    here = Emitter(at, request.location)
    seed = request.seed if request.seed is not None else here.const(1.0, placed[output])
    try:
        cotangents = backpropagate(pairs, {output: seed}, [block.args[i] for i in wrt], at)
    except NoDerivative as err:
        raise error_at(str(err), err.location or request.location) from None
    grads = [c or here.zeros_like(request.args[i]) for c, i in zip(cotangents, wrt)]
    values = [placed.get(r, r) for r in ret.arguments]
    results = [*values, *grads] if request.WITH_VALUE else grads
    Rewriter.replace_op(request, [], results)


@dataclass(frozen=True)
class AutodiffPass(ModulePass):
    name = "autodiff"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        while requests := [r for r in op.walk() if isinstance(r, GradRequestOp)]:
            ready = [r for r in requests if not has_request(op, callee_of(op, r))]
            if not ready:
                raise error_at(
                    "derivative requests depend on each other in a cycle", requests[0].location
                )
            expand(op, ready[0])
        drop_unused_private_functions(op)
        for cleanup in (
            CanonicalizePass(),
            CommonSubexpressionElimination(),
            DeadCodeElimination(),
        ):
            cleanup.apply(ctx, op)
