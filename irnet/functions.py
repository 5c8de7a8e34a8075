"""Functions of an xDSL module, read and extended: which are public, what a function reaches,
their printout, and a gradient function added beside one (`Model.grad`, the REPL's `:grad`)."""

from __future__ import annotations

from io import StringIO

from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, SymbolRefAttr
from xdsl.printer import Printer

from irnet.dialects.ad import ValueAndGradOp


def functions_of(module: ModuleOp) -> list[func.FuncOp]:
    return [f for f in module.ops if isinstance(f, func.FuncOp)]


def public_functions(module: ModuleOp) -> list[func.FuncOp]:
    return [f for f in functions_of(module) if f.sym_visibility is None]


def reachable(module: ModuleOp, name: str) -> list[func.FuncOp]:
    """The function `name` and every function it calls or differentiates, in module order."""
    functions = {f.sym_name.data: f for f in functions_of(module)}
    seen: set[str] = set()

    def visit(symbol: str) -> None:
        if symbol in seen or symbol not in functions:
            return
        seen.add(symbol)
        for op in functions[symbol].body.walk():
            callee = getattr(op, "callee", None)
            if isinstance(callee, SymbolRefAttr):
                visit(callee.string_value())

    visit(name)
    return [f for f in functions.values() if f.sym_name.data in seen]


def format_ir(functions: list[func.FuncOp], locations: bool = False) -> str:
    """The functions as xDSL prints them, with their `loc(...)` if `locations`."""
    out = StringIO()
    printer = Printer(out, print_debuginfo=locations)
    for i, function in enumerate(functions):
        out.write("\n" * (i > 0))
        printer.print_op(function)
    return out.getvalue()


def add_gradient(
    module: ModuleOp, function: func.FuncOp, wrt: list[int], symbol: str | None = None
) -> str:
    """Add a public function `symbol` (default `NAME.grad`) returning `function`'s value and
    its gradients with respect to the arguments at `wrt` (an `ad.value_and_grad` request,
    which the autodiff pass expands); return its symbol. It takes `function`'s arguments,
    with their names and roles."""
    types = [a.type for a in function.args]
    wrapper = func.FuncOp(symbol or f"{function.sym_name.data}.grad", (types, []))
    wrapper.arg_attrs = function.arg_attrs
    for arg, original in zip(wrapper.args, function.args):
        arg.name_hint = original.name_hint
    request = ValueAndGradOp.request(function, list(wrapper.args), wrt)
    request.location = function.location
    wrapper.body.block.add_ops([request, func.ReturnOp(*request.results)])
    wrapper.function_type = FunctionType.from_lists(types, request.result_types)
    module.body.block.add_op(wrapper)
    return wrapper.sym_name.data


def keep_only(module: ModuleOp, name: str) -> None:
    """Delete every function that `@name` neither is, calls nor differentiates."""
    kept = {f.sym_name.data for f in reachable(module, name)}
    for function in functions_of(module):
        if function.sym_name.data not in kept:
            module.body.block.erase_op(function)
