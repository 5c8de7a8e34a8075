"""AST to IR: the `irn` frontend.

- Each `model` becomes a public `func.func`: its inputs, then its parameters as arguments named by
  stable dotted paths (`dense_0.w`) with `nn.param` / `nn.init` argument attributes.
- Each `train` block's `loss` becomes a public `func.func @<model>.loss(inputs, targets, params)`.
- A `def` is a template: compile-time arguments (`units: int`) and symbolic dims (`N`, `I`) are
  fixed at each call, so every distinct call signature is specialised into a private
  `func.func` and called with `func.call`. Each call site passes its own parameters, so two
  `dense` calls share code but not weights. The `inline-functions` pass then inlines the calls
  (autodiff and the backends want one flat function); keeping them in the frontend's output
  lets a reader see the model's structure first.

Every op is located at the `.irn` text it came from. Shapes and dtypes are checked as ops are
built, by the op's own `infer` rule.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f32,
    f64,
)
from xdsl.ir import Attribute, OpResult, Region, SSAValue

from irnet.dialects import nn
from irnet.dialects.ad import GradOp, ValueAndGradOp, compatible
from irnet.dialects.shapes import DYN, dtype_name, format_shape, format_type

from . import ast
from .builtins import BUILTINS, UNROLL_LIMIT, bind_arguments, comparison_props, suggest
from .diagnostics import IrnError
from .function_builder import (
    DTYPES,
    DTypeValue,
    FunctionBuilder,
    GradFn,
    ParamInfo,
    RuntimeDim,
    describe,
    location,
)
from .imports import FunctionRef, LoadedModule, Program, stdlib_modules
from .indexing import ELLIPSIS, Bounds, index
from .initializers import INITIALIZERS, complete_arguments

BINARY_OPS = {
    "+": (nn.AddOp, operator.add), "-": (nn.SubOp, operator.sub),
    "*": (nn.MulOp, operator.mul), "/": (nn.DivOp, operator.truediv),
    "//": (nn.FloorDivOp, operator.floordiv), "%": (nn.ModOp, operator.mod),
    "**": (nn.PowOp, operator.pow), "@": (nn.MatmulOp, None),
}  # fmt: skip
COMPARE_OPS = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


@dataclass
class Spec:
    """A generated function: its symbol, result type and parameters in argument order."""

    symbol: str
    result_type: TensorType
    params: list[ParamInfo]
    """Its parameters and state tensors, in argument order."""
    is_model: bool = False

    @property
    def states(self) -> list[ParamInfo]:
        """The state tensors, whose next values the function returns after its result."""
        return [p for p in self.params if p.kind == "state"]


class IRGen:
    """Generates the IR module for one `Program`'s main file."""

    def __init__(self, program: Program, main: LoadedModule, float64: bool = False):
        self.program = program
        self.main = main
        self.float64 = float64
        """Build every `f32` as `f64` (`--f64`): see `FunctionBuilder.named_dtype`."""
        self.module_op = ModuleOp([])
        self.specs: dict[tuple, Spec] = {}
        self.models: dict[str, Spec] = {}
        self.in_progress: set[tuple] = set()
        self.symbols: set[str] = set()
        self.functions: dict[str, func.FuncOp] = {}
        self.seed_counter = 0

    def generate(self) -> ModuleOp:
        """One function per model of the main file (train blocks: see `train_ir`)."""
        for fn in self.main.tree.functions:
            if fn.kind == "model":
                self.model_spec(FunctionRef(fn, self.main))
        return self.module_op

    def model_ref(self, name: str, loc: ast.Loc) -> FunctionRef:
        ref = self.main.namespace.get(name)
        if not isinstance(ref, FunctionRef) or ref.fn.kind != "model":
            models = [
                n
                for n, r in self.main.namespace.items()
                if isinstance(r, FunctionRef) and r.fn.kind == "model"
            ]
            raise IrnError(f"train block names no model '{name}'{suggest(name, models)}", loc)
        return ref

    # --- functions ---

    def unique_symbol(self, base: str) -> str:
        symbol, index = base, 1
        while symbol in self.symbols:
            symbol, index = f"{base}_{index}", index + 1
        self.symbols.add(symbol)
        return symbol

    def finish(
        self,
        fb: FunctionBuilder,
        symbol: str,
        results: Sequence[SSAValue],
        loc: ast.Loc,
        return_loc: ast.Loc,
        private: bool,
        roles: Sequence[tuple[str, str] | None] = (),
    ) -> func.FuncOp:
        """The function `fb` built, returning `results` (their `roles` marked as result
        attributes), then the last value of each state tensor it holds."""
        states = fb.states
        results = [*results, *(fb.state_values[s.name] for s in states)]
        roles = [*roles, *[None] * (len(results) - len(states) - len(roles))]
        roles += [("state", s.name) for s in states]
        ret = func.ReturnOp(*results)
        ret.location = location(return_loc)
        fb.block.add_op(ret)
        inputs = [arg.type for arg in fb.block.args]
        op = func.FuncOp(
            symbol,
            (inputs, [r.type for r in results]),
            Region(fb.block),
            "private" if private else None,
            # No attributes print as none, and parse back as None: keep the two equal.
            arg_attrs=attribute_array(fb.arg_attrs),
            res_attrs=attribute_array(
                [{f"nn.{r[0]}": StringAttr(r[1])} if r else {} for r in roles]
            ),
        )
        op.location = location(loc)
        self.module_op.body.block.add_op(op)
        self.functions[symbol] = op
        return op

    def model_spec(self, ref: FunctionRef) -> Spec:
        symbol = ref.module.prefix + ref.fn.name
        if symbol in self.models:
            return self.models[symbol]
        key = ("model", symbol)
        if key in self.in_progress:
            raise IrnError(f"model '{ref.fn.name}' calls itself", ref.fn.loc)
        check_unique_arguments(ref.fn)
        self.in_progress.add(key)
        fb = FunctionBuilder(self, ref.module)
        for arg in ref.fn.args:
            if not isinstance(arg.type, ast.TensorTypeExpr):
                raise IrnError(
                    f"model inputs must be tensors; '{arg.name}' is a compile-time {arg.type.kind}",
                    arg.loc,
                )
            type_ = signature_type(fb, arg.type)
            value = fb.add_argument(arg.name, type_, arg.loc, {"nn.input": StringAttr(arg.name)})
            fb.env[arg.name] = value
        result, return_loc = run_body(fb, ref.fn)
        check_result(fb, ref.fn, result)
        self.in_progress.discard(key)
        self.finish(fb, self.unique_symbol(symbol), [result], ref.fn.loc, return_loc, False)
        spec = Spec(symbol, result.type, fb.params, is_model=True)
        self.models[symbol] = spec
        return spec

    def specialise(self, ref: FunctionRef, bound: dict[str, Any], call_loc: ast.Loc) -> Spec:
        fn = ref.fn
        check_unique_arguments(fn)
        for arg in fn.args:  # compile-time values first: tensor types may use them
            value = bound[arg.name]
            if not isinstance(arg.type, ast.TensorTypeExpr):
                bound[arg.name] = compile_time_argument(fn.name, arg, value, call_loc)
            elif not isinstance(value, SSAValue):
                raise IrnError(
                    f"argument '{arg.name}' of {fn.name} must be a tensor, got {describe(value)}",
                    call_loc,
                )
        key = (id(fn), tuple(specialisation_key(bound[a.name]) for a in fn.args))
        if key in self.specs:
            return self.specs[key]
        if key in self.in_progress:
            raise IrnError(f"'{fn.name}' calls itself; recursion is not supported", call_loc)
        self.in_progress.add(key)
        fb = FunctionBuilder(self, ref.module)
        fb.env.update({a.name: bound[a.name] for a in fn.args if a.name not in tensor_names(fn)})
        for arg in fn.args:
            if isinstance(arg.type, ast.TensorTypeExpr):
                match_argument(fb, fn.name, arg, bound[arg.name], call_loc)
                fb.env[arg.name] = fb.add_argument(arg.name, bound[arg.name].type, arg.loc, {})
        try:
            result, return_loc = run_body(fb, fn)
            check_result(fb, fn, result)
        except IrnError as e:
            if e.loc != call_loc:
                e.notes.append(f"in '{fn.name}', called from {call_loc}")
            raise
        self.in_progress.discard(key)
        symbol = self.unique_symbol(ref.module.prefix + fn.name)
        self.finish(fb, symbol, [result], fn.loc, return_loc, True)
        spec = Spec(symbol, result.type, fb.params)
        self.specs[key] = spec
        return spec

    def instantiate(
        self, fb: FunctionBuilder, ref: FunctionRef, loc: ast.Loc, args, keywords
    ) -> tuple[Spec, list[SSAValue], list[str]]:
        """The function generated for this call, the call's operands (its tensor arguments,
        then the parameters and state this call site owns) and the caller's names of those
        state tensors."""
        fn = ref.fn
        names = [a.name for a in fn.args]
        defaults = {a.name for a in fn.args if a.default is not None}
        bound = bind_arguments(fn.name, names, defaults, args, keywords, loc)
        if fn.kind == "model":
            spec = self.model_spec(ref)
            inputs = self.functions[spec.symbol].args
            for arg, expected in zip(fn.args, inputs):
                value = bound[arg.name]
                if not isinstance(value, SSAValue) or not compatible(expected.type, value.type):
                    got = describe(value)
                    raise IrnError(
                        f"argument '{arg.name}' of model {fn.name} expects "
                        f"{format_type(expected.type)}, got {got}",
                        loc,
                    )
        else:
            fill_defaults(fb, ref, bound)
            for arg in fn.args:
                bound[arg.name] = scalar_argument(fb, arg, bound[arg.name], loc)
            spec = self.specialise(ref, bound, loc)
        own_params = fn.kind == "model" and fb.shares_params_of == spec.symbol
        prefix = "" if own_params else fb.instance_prefix + fb.next_instance(fn.name) + "."
        operands = [bound[a.name] for a in fn.args if isinstance(a.type, ast.TensorTypeExpr)]
        params = [
            fb.parameter(ParamInfo(prefix + p.name, p.type, p.init, p.init_args, p.loc, p.kind))
            for p in spec.params
        ]
        return spec, [*operands, *params], [prefix + s.name for s in spec.states]

    def call(self, fb: FunctionBuilder, ref: FunctionRef, node: ast.Call, args, keywords):
        spec, operands, states = self.instantiate(fb, ref, node.loc, args, keywords)
        operands = self.fit_operands(fb, spec, operands, node.loc)
        types = [spec.result_type, *(s.type for s in spec.states)]
        result = fb.emit(func.CallOp(spec.symbol, operands, types), node.loc)
        assert isinstance(result, OpResult)
        for name, value in zip(states, result.op.results[1:]):
            fb.update_state(name, value)
        if spec.symbol == fb.shares_params_of:
            fb.model_outputs.append(result)
        return result

    def fit_operands(
        self, fb: FunctionBuilder, spec: Spec, operands: list[SSAValue], loc: ast.Loc
    ) -> list[SSAValue]:
        """A model's inputs may be `?` where the call's tensors are static: `nn.cast` relaxes
        those types (as MLIR's `tensor.cast`), so call and callee agree exactly."""
        inputs = self.functions[spec.symbol].function_type.inputs.data
        return [
            v if v.type == t else fb.emit(nn.CastOp(operands=[v], result_types=[t]), loc)
            for v, t in zip(operands, inputs)
        ]

    def derivative(self, fb: FunctionBuilder, grad: GradFn, node: ast.Call, args, keywords):
        """`grad(f, wrt=...)(args)`: an `ad.grad` (or `ad.value_and_grad`) request. One
        gradient per `wrt` entry; `value_and_grad` gives the value first."""
        spec, operands, states = self.instantiate(fb, grad.function, node.loc, args, keywords)
        result = spec.result_type
        if result.get_num_dims() != 0 or result.element_type not in (f32, f64):
            raise IrnError(
                f"grad() needs a function returning a float scalar; "
                f"{grad.function.fn.name} returns {format_type(result)}",
                node.loc,
            )
        tensor_args = [
            a.name for a in grad.function.fn.args if isinstance(a.type, ast.TensorTypeExpr)
        ]
        wrt = wrt_indices(grad.wrt, tensor_args, node.loc)
        for i in wrt:
            if operands[i].type.element_type not in (f32, f64):
                raise IrnError(
                    f"cannot differentiate with respect to '{tensor_args[i]}', "
                    f"a {format_type(operands[i].type)} tensor",
                    node.loc,
                )
        # A function with state returns its next state after its value: ask for both, to
        # carry the state on as a call would.
        request_class = ValueAndGradOp if grad.with_value or states else GradOp
        operands = self.fit_operands(fb, spec, operands, node.loc)
        request = request_class.request(self.functions[spec.symbol], operands, wrt)
        fb.emit(request, node.loc)
        results = tuple(request.grads)
        if request.WITH_VALUE:
            value, *rest = request.results
            for name, next_value in zip(states, rest):
                fb.update_state(name, next_value)
            if grad.with_value:
                results = (value, *results)
        single = not isinstance(grad.wrt, list) and not grad.with_value
        return results[0] if single else results


def attribute_array(dicts: Sequence[dict[str, Attribute]]) -> ArrayAttr | None:
    return ArrayAttr([DictionaryAttr(d) for d in dicts]) if any(dicts) else None


def wrt_indices(wrt: Any, names: list[str], loc: ast.Loc) -> list[int]:
    """`wrt=` as positions among the function's tensor arguments: a name, an index or a list."""
    items = wrt if isinstance(wrt, list) else [wrt]
    indices = []
    for item in items:
        if isinstance(item, str) and item in names:
            indices.append(names.index(item))
        elif (
            isinstance(item, int)
            and not isinstance(item, bool)
            and -len(names) <= item < len(names)
        ):
            indices.append(item % len(names))
        else:
            raise IrnError(f"wrt={item!r} names no tensor argument; the arguments are {names}", loc)
    if not indices or len(set(indices)) != len(indices):
        raise IrnError("wrt= must name distinct arguments", loc)
    return indices


# --- statements --------------------------------------------------------------------------------


def run_body(fb: FunctionBuilder, fn: ast.Function) -> tuple[SSAValue, ast.Loc]:
    result = run_block(fb, fn.body)
    if result is None:
        raise IrnError(f"'{fn.name}' does not return a value (add `return ...`)", fn.loc)
    value, loc = result
    return fb.tensor(value, loc), loc


def run_block(fb: FunctionBuilder, body: list[ast.Stmt]) -> tuple[Any, ast.Loc] | None:
    for i, stmt in enumerate(body):
        result = run_statement(fb, stmt)
        if result is not None:
            if i + 1 < len(body):
                raise IrnError("unreachable statement after `return`", body[i + 1].loc)
            return result
    return None


def run_statement(fb: FunctionBuilder, stmt: ast.Stmt) -> tuple[Any, ast.Loc] | None:
    match stmt:
        case ast.Assign(target=target, value=value):
            if target in fb.dims:
                raise IrnError(
                    f"'{target}' is a dimension of the signature; pick another name", stmt.loc
                )
            bind(fb, target, evaluate(fb, value), stmt.loc)
        case ast.Unpack(targets=targets, value=value):
            values = evaluate(fb, value)
            if not isinstance(values, tuple) or len(values) != len(targets):
                count = len(values) if isinstance(values, tuple) else 1
                raise IrnError(
                    f"cannot unpack {count} value(s) into {len(targets)} names", stmt.loc
                )
            for target, item in zip(targets, values):
                bind(fb, target, item, stmt.loc)
        case ast.Param():
            declare_param(fb, stmt)
        case ast.Return(value=value):
            return evaluate(fb, value), value.loc
        case ast.For(var=var, iterable=iterable, body=body):
            items = evaluate(fb, iterable)
            if isinstance(items, list) and len(items) > UNROLL_LIMIT:
                raise IrnError(
                    f"a `for` loop is unrolled at compile time; {len(items):,} iterations is "
                    f"more than {UNROLL_LIMIT:,}",
                    iterable.loc,
                )
            if not isinstance(items, list):
                raise IrnError(
                    f"`for` loops run over a compile-time list, got {describe(items)}; a loop "
                    "over a run-time extent is `scan(cell, init, xs)`",
                    iterable.loc,
                )
            for item in items:
                fb.env[var] = item
                if run_block(fb, body) is not None:
                    raise IrnError("`return` inside a `for` loop is not supported", stmt.loc)
    return None


def bind(fb: FunctionBuilder, name: str, value: Any, loc: ast.Loc) -> None:
    """`name = value`. Assigning to a state tensor gives its next value, which must keep its
    type: training keeps the last value assigned."""
    if name in fb.own_states:
        current = fb.state_values[name]
        value = fb.tensor(value, loc, current.type)
        if value.type != current.type:
            raise IrnError(
                f"state '{name}' is {format_type(current.type)}; its next value must be too, "
                f"but this is {format_type(value.type)}",
                loc,
            )
        fb.update_state(name, value)
    if isinstance(value, OpResult) and value.name_hint is None:
        value.name_hint = name
    fb.env[name] = value


def declare_param(fb: FunctionBuilder, stmt: ast.Param) -> None:
    """`param NAME: TYPE = INIT` or `state NAME: TYPE = INIT`."""
    what = "parameter" if stmt.kind == "param" else "state tensor"
    if stmt.name in fb.env or stmt.name in fb.param_args:
        raise IrnError(f"'{stmt.name}' is already defined", stmt.loc)
    dtype = fb.element_type(stmt.type)
    if dtype not in (f32, f64):
        raise IrnError(f"{what}s are float tensors; '{stmt.name}' is {stmt.type.dtype}",
                       stmt.type.loc)  # fmt: skip
    shape = []
    for dim in stmt.type.dims:
        size = evaluate_dim(fb, dim)
        if size == DYN:
            raise IrnError(
                f"the shape of {what} '{stmt.name}' depends on a dimension known only at run "
                f"time; {what} shapes must be static",
                dim.loc,
            )
        if size < 0:
            raise IrnError(f"{what} '{stmt.name}' has a negative dimension {size}", dim.loc)
        shape.append(size)
    init, init_args = initializer(fb, stmt.init)
    info = ParamInfo(stmt.name, TensorType(dtype, shape), init, init_args, stmt.loc, stmt.kind)
    fb.env[stmt.name] = fb.parameter(info)
    if stmt.kind == "state":
        fb.own_states.add(stmt.name)


def initializer(fb: FunctionBuilder, expr: ast.Expr) -> tuple[str, dict[str, float]]:
    match expr:
        case ast.Name(id=name):
            args: dict[str, float] = {}
        case ast.Call(func=ast.Name(id=name), args=[], keywords=keywords):
            args = {}
            for kw in keywords:
                value = evaluate(fb, kw.value)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise IrnError(f"initialiser argument '{kw.name}' must be a number", kw.loc)
                args[kw.name] = float(value)
        case _:
            raise IrnError(
                "an initialiser is a name such as `zeros` or a call with keyword arguments "
                "such as `normal(std=0.01)`",
                expr.loc,
            )
    if name not in INITIALIZERS:
        raise IrnError(f"unknown initialiser '{name}'{suggest(name, list(INITIALIZERS))}", expr.loc)
    try:
        complete_arguments(name, args)
    except ValueError as e:
        raise IrnError(str(e), expr.loc) from None
    return name, args


# --- signatures --------------------------------------------------------------------------------


def signature_type(fb: FunctionBuilder, type_expr: ast.TensorTypeExpr) -> TensorType:
    """The IR type of a model input, the next argument of `fb`: new names become symbolic dims,
    printed `?`, sized at run time by this input."""
    shape = []
    for axis, dim in enumerate(type_expr.dims):
        if isinstance(dim, ast.Ellipsis):
            raise IrnError("`...` is not allowed in a model signature; give every dim", dim.loc)
        if isinstance(dim, ast.Name) and dim.id not in fb.dims and dim.id not in fb.env:
            fb.bind_runtime_dim(dim.id, axis)
        size = evaluate_dim(fb, dim)
        if size < 0 and size != DYN:
            raise IrnError(f"a negative dimension ({size}) is not allowed", dim.loc)
        shape.append(size)
    return TensorType(fb.element_type(type_expr), shape)


def expand_ellipsis(dims: list[ast.Expr], rank: int) -> list[ast.Expr | None] | None:
    """The declared dims aligned to `rank` actual dims (None where `...` matches), or None if
    the ranks cannot agree."""
    ellipses = [i for i, d in enumerate(dims) if isinstance(d, ast.Ellipsis)]
    if len(ellipses) > 1:
        raise IrnError("only one `...` is allowed in a type", dims[ellipses[1]].loc)
    if not ellipses:
        return list(dims) if len(dims) == rank else None
    i = ellipses[0]
    fill = rank - (len(dims) - 1)
    if fill < 0:
        return None
    return [*dims[:i], *([None] * fill), *dims[i + 1 :]]


def match_argument(
    fb: FunctionBuilder, fname: str, arg: ast.Argument, value: Any, loc: ast.Loc
) -> None:
    """Check a call's tensor against a declared argument type, binding its symbolic dims."""
    declared: ast.TensorTypeExpr = arg.type  # type: ignore[assignment]
    if not isinstance(value, SSAValue):
        raise IrnError(
            f"argument '{arg.name}' of {fname} must be a tensor, got {describe(value)}", loc
        )
    actual = value.type
    mismatch = IrnError(
        f"argument '{arg.name}' of {fname} expects {type_spelling(declared)}, "
        f"got {format_type(actual)}",
        loc,
    )
    if declared.dtype not in DTYPES and declared.dtype not in fb.env:
        fb.env[declared.dtype] = DTypeValue(dtype_name(actual.element_type))
    if fb.element_type(declared) != actual.element_type:
        raise mismatch
    aligned = expand_ellipsis(declared.dims, actual.get_num_dims())
    if aligned is None:
        raise mismatch
    for axis, (dim, size) in enumerate(zip(aligned, actual.get_shape())):
        if dim is None or isinstance(dim, ast.Dynamic):
            continue
        if isinstance(dim, ast.Name) and dim.id not in fb.dims and dim.id not in fb.env:
            if size == DYN:  # sized by the argument this value becomes, added next
                fb.bind_runtime_dim(dim.id, axis)
            else:
                fb.dims[dim.id] = size
            continue
        expected = evaluate_dim(fb, dim)
        if expected != size and DYN not in (expected, size):
            raise mismatch


def check_result(fb: FunctionBuilder, fn: ast.Function, result: SSAValue) -> None:
    if fn.result is None:
        return
    declared, actual = fn.result, result.type
    aligned = expand_ellipsis(declared.dims, actual.get_num_dims())
    expected = [
        None if d is None else evaluate_dim(fb, d, allow_unknown=False) for d in aligned or []
    ]
    same_dims = aligned is not None and all(
        e is None or e == a or DYN in (e, a) for e, a in zip(expected, actual.get_shape())
    )
    dtype = fb.element_type(declared)
    if dtype != actual.element_type or not same_dims:
        resolved = dtype_name(dtype) + format_shape([DYN if e is None else e for e in expected])
        spelled = type_spelling(declared)
        meaning = f" ({resolved})" if aligned is not None and resolved != spelled else ""
        raise IrnError(
            f"'{fn.name}' is declared to return {spelled}{meaning} "
            f"but returns {format_type(actual)}",
            declared.loc,
        )


def type_spelling(t: ast.TensorTypeExpr) -> str:
    return t.dtype + "[" + ", ".join(dim_spelling(d) for d in t.dims) + "]"


def dim_spelling(d: ast.Expr) -> str:
    match d:
        case ast.Name(id=name):
            return name
        case ast.Number(value=v):
            return str(v)
        case ast.Dynamic():
            return "?"
        case ast.Ellipsis():
            return "..."
        case ast.BinOp(op=op, lhs=lhs, rhs=rhs):
            return f"{dim_spelling(lhs)}{op}{dim_spelling(rhs)}"
    return "<expr>"


def evaluate_dim(fb: FunctionBuilder, dim: ast.Expr, allow_unknown: bool = True) -> int:
    if isinstance(dim, ast.Dynamic):
        return DYN
    if isinstance(dim, ast.Name) and dim.id not in fb.env and dim.id not in fb.dims:
        raise IrnError(f"unknown dimension '{dim.id}'", dim.loc)
    value = evaluate(fb, dim)
    if isinstance(value, RuntimeDim):
        return DYN
    if isinstance(value, bool) or not isinstance(value, int):
        raise IrnError(f"a dimension must be an integer, got {describe(value)}", dim.loc)
    return value


def compile_time_argument(fname: str, arg: ast.Argument, value: Any, loc: ast.Loc) -> Any:
    kind = arg.type.kind  # type: ignore[union-attr]
    if isinstance(arg.type, ast.ListTypeExpr):
        ok = isinstance(value, list) and all(scalar_kind_ok(kind, v) for v in value)
        spelled = f"[{kind}]"
    else:
        ok = scalar_kind_ok(kind, value)
        spelled = "a dtype" if kind == "dtype" else kind
    if not ok:
        raise IrnError(
            f"argument '{arg.name}' of {fname} must be {spelled}, got {describe(value)}", loc
        )
    return float(value) if kind == "float" and not isinstance(value, list) else value


def scalar_kind_ok(kind: str, value: Any) -> bool:
    if kind == "dtype":
        return isinstance(value, DTypeValue)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind == "int" else isinstance(value, int | float)


def check_unique_arguments(fn: ast.Function) -> None:
    seen: set[str] = set()
    for arg in fn.args:
        if arg.name in seen:
            raise IrnError(
                f"'{arg.name}' is defined twice in the arguments of '{fn.name}'", arg.loc
            )
        seen.add(arg.name)


def tensor_names(fn: ast.Function) -> set[str]:
    return {a.name for a in fn.args if isinstance(a.type, ast.TensorTypeExpr)}


def scalar_argument(fb: FunctionBuilder, arg: ast.Argument, value: Any, loc: ast.Loc) -> Any:
    """A number or `true`/`false` given for a scalar tensor argument of a named dtype
    (`causal: bool = false`) becomes a constant of that dtype; any other value is kept."""
    is_scalar = isinstance(arg.type, ast.TensorTypeExpr) and not arg.type.dims
    if not is_scalar or arg.type.dtype not in DTYPES or not isinstance(value, int | float):
        return value
    return fb.tensor(value, loc, TensorType(fb.named_dtype(arg.type.dtype), []))


def fill_defaults(fb_caller: FunctionBuilder, ref: FunctionRef, bound: dict[str, Any]) -> None:
    """Evaluate missing arguments' defaults at the call site; a default may use the arguments
    before it (`def f(a: F[...], b: F[...] = relu(a))`)."""
    scope = FunctionBuilder(fb_caller.gen, ref.module, block=fb_caller.block)
    for arg in ref.fn.args:
        if arg.name not in bound and arg.default is not None:
            bound[arg.name] = evaluate(scope, arg.default)
            if scope.params:
                raise IrnError(
                    f"the default of '{arg.name}' calls a layer with parameters; "
                    "pass that value explicitly",
                    arg.default.loc,
                )
        scope.env[arg.name] = bound[arg.name]


def specialisation_key(value: Any) -> Any:
    if isinstance(value, SSAValue):
        return value.type
    if isinstance(value, list):
        return ("list", tuple(specialisation_key(v) for v in value))
    return (type(value).__name__, value)


# --- expressions -------------------------------------------------------------------------------


def evaluate(fb: FunctionBuilder, expr: ast.Expr) -> Any:
    match expr:
        case ast.Number(value=v) | ast.Bool(value=v) | ast.String(value=v):
            return v
        case ast.DType(name=name):
            return DTypeValue(name)
        case ast.ListExpr(items=items):
            return [evaluate(fb, i) for i in items]
        case ast.Name(id=name):
            return lookup(fb, name, expr.loc)
        case ast.Attribute(value=value, name=name):
            return attribute(fb, evaluate(fb, value), name, expr.loc)
        case ast.Neg(operand=operand):
            return negate(fb, evaluate(fb, operand), expr.loc)
        case ast.BinOp(op=op, lhs=lhs, rhs=rhs):
            return binary(fb, op, evaluate(fb, lhs), evaluate(fb, rhs), expr.loc)
        case ast.Call():
            return call(fb, expr)
        case ast.Index(value=value, subscripts=subscripts):
            subs = [subscript(fb, s) for s in subscripts]
            return index(fb, evaluate(fb, value), subs, expr.loc)
        case ast.Dynamic() | ast.Ellipsis():
            token = "?" if isinstance(expr, ast.Dynamic) else "..."
            raise IrnError(f"'{token}' is only allowed in types and subscripts", expr.loc)
    raise IrnError("unsupported expression", expr.loc)


def lookup(fb: FunctionBuilder, name: str, loc: ast.Loc) -> Any:
    """What a name means in a body: a local, a dim of its signature, a name of its file, or a
    builtin."""
    if name in fb.env:
        return fb.env[name]
    if name in fb.dims:
        size = fb.dims[name]
        return RuntimeDim(name) if size == DYN else size
    if name in fb.module.namespace:
        return fb.module.namespace[name]
    if name in BUILTINS:
        return BUILTINS[name]
    home = stdlib_modules().get(name)
    if home is not None:
        raise IrnError(
            f"unknown name '{name}': the standard library's {home} defines it; "
            f"add `from {home} import {name}` (or `import {home}` and write `{home}.{name}`)",
            loc,
        )
    known = [*fb.env, *fb.dims, *fb.module.namespace, *BUILTINS]
    raise IrnError(f"unknown name '{name}'{suggest(name, known)}", loc)


def subscript(fb: FunctionBuilder, sub: ast.Expr | ast.Slice) -> Any:
    if isinstance(sub, ast.Ellipsis):
        return ELLIPSIS
    if isinstance(sub, ast.Slice):
        bounds = (sub.start, sub.stop, sub.step)
        return Bounds(
            *(
                None if e is None else fb.int(evaluate(fb, e), "a slice bound", e.loc)
                for e in bounds
            )
        )
    return evaluate(fb, sub)


def attribute(fb: FunctionBuilder, value: Any, name: str, loc: ast.Loc) -> Any:
    if isinstance(value, LoadedModule):
        if name not in value.namespace:
            raise IrnError(
                f"{value.display} has no '{name}'{suggest(name, list(value.namespace))}", loc
            )
        return value.namespace[name]
    raise IrnError(f"{describe(value)} has no attribute '{name}'", loc)


def negate(fb: FunctionBuilder, value: Any, loc: ast.Loc) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return -value
    return fb.op(nn.NegOp, [fb.tensor(value, loc)], loc)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value != DYN


def binary(fb: FunctionBuilder, op: str, lhs: Any, rhs: Any, loc: ast.Loc) -> Any:
    if op in COMPARE_OPS:
        if isinstance(lhs, SSAValue) or isinstance(rhs, SSAValue):
            a, b = fb.promote_pair(lhs, rhs, loc)
            return fb.op(nn.CmpOp, [a, b], loc, **comparison_props(op))
        if not (is_number(lhs) and is_number(rhs)):
            raise IrnError(f"cannot apply '{op}' to {describe(lhs)} and {describe(rhs)}", loc)
        return COMPARE_OPS[op](lhs, rhs)
    op_class, python_op = BINARY_OPS[op]
    if isinstance(lhs, SSAValue) or isinstance(rhs, SSAValue):
        if op == "@" and not (isinstance(lhs, SSAValue) and isinstance(rhs, SSAValue)):
            raise IrnError("`@` multiplies two tensors", loc)
        return fb.binary(op_class, lhs, rhs, loc)
    if isinstance(lhs, RuntimeDim) or isinstance(rhs, RuntimeDim):
        return runtime_dim_arith(op, lhs, rhs, loc)
    if op == "+" and isinstance(lhs, list) and isinstance(rhs, list):
        return lhs + rhs
    if python_op is None or not (is_number(lhs) and is_number(rhs)):
        raise IrnError(f"cannot apply '{op}' to {describe(lhs)} and {describe(rhs)}", loc)
    if op == "**" and isinstance(lhs, int) and isinstance(rhs, int) and abs(rhs) > 64:
        lhs = float(lhs)  # keep exact integer powers small: 9 ** 9 ** 9 must not hang
    try:
        result = python_op(lhs, rhs)
        if isinstance(result, int) and not -(2**63) <= result < 2**63:
            raise OverflowError("the integer is too large")
    except (ZeroDivisionError, OverflowError) as e:
        raise IrnError(f"compile-time arithmetic failed: {e}", loc) from None
    if isinstance(result, complex):
        raise IrnError("compile-time arithmetic produced a complex number", loc)
    return result


def runtime_dim_arith(op: str, lhs: Any, rhs: Any, loc: ast.Loc) -> RuntimeDim:
    def spell(v: Any) -> str:
        if isinstance(v, RuntimeDim):
            return v.spelling
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        raise IrnError(f"cannot apply '{op}' to a run-time dimension and {describe(v)}", loc)

    if op not in ("+", "-", "*"):
        raise IrnError(f"'{op}' on a dimension known only at run time is not supported", loc)
    return RuntimeDim(f"{spell(lhs)} {op} {spell(rhs)}")


def call(fb: FunctionBuilder, node: ast.Call) -> Any:
    target = evaluate(fb, node.func)
    args = [evaluate(fb, a) for a in node.args]
    keywords = [(k.name, evaluate(fb, k.value), k.loc) for k in node.keywords]
    if isinstance(target, FunctionRef):
        return fb.gen.call(fb, target, node, args, keywords)
    if isinstance(target, GradFn):
        return fb.gen.derivative(fb, target, node, args, keywords)
    if callable(target):
        return target(fb, node.loc, args, keywords)
    raise IrnError(f"{describe(target)} is not callable", node.func.loc)
