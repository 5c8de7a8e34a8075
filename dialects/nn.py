"""The `nn` dialect: tensor ops with value semantics and NumPy broadcasting.

Every op keeps its rules in one place, on its class:

- `infer(operand_types, props, result_type)`: the result type, or a `ShapeError`. The frontend
  calls it (through `build`) to type the IR it creates; `verify_` calls it again, so a hand-written
  or transformed `.mlir` file is checked by the same rule.
- traits (`dialects/traits.py`): elementwise with its scalar formula, reduction, view, host-only,
  not differentiable, shape-only: what fusion, memory planning, autodiff and the targets ask;
- canonicalisation patterns, registered for the op in `nn_patterns.py`.

Dynamic dimensions print as `?`. Properties print in the attribute dictionary.

Broadcasting is NumPy's, made static: a dimension stretches only where the operand's *type* has
size 1 (or lacks the dimension). A `?` dimension never stretches; at run time it must equal the
result's size (the reference target checks it). So the axes a broadcast added are known from
the types alone, and the autodiff pass can sum a gradient back over exactly those axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Self

from xdsl.dialects.builtin import (
    I64,
    AnyAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    i1,
    i64,
)
from xdsl.interfaces import HasCanonicalizationPatternsInterface
from xdsl.ir import Attribute, Block, Dialect, Operation, Region, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    AttrSizedResultSegments,
    IRDLOperation,
    ParamAttrConstraint,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    lazy_traits_def,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser
from xdsl.pattern_rewriter import RewritePattern
from xdsl.printer import Printer
from xdsl.traits import (
    ConstantLike,
    HasParent,
    IsolatedFromAbove,
    IsTerminator,
    MemoryAllocEffect,
    Pure,
)
from xdsl.utils.exceptions import VerifyException

from .formula import Formula
from .shapes import (
    DYN,
    ShapeError,
    broadcast_shapes,
    dims_compatible,
    format_shape,
    format_type,
    is_bool,
    is_float,
    is_int,
    normalize_axis,
    num_elements,
    shapes_compatible,
    static_product,
    window_output_size,
)
from .traits import (
    Elementwise,
    HostOnly,
    NotDifferentiable,
    Reduction,
    ShapeOnly,
    View,
    elementwise,
)

Props = Mapping[str, Attribute]


# --- property helpers --------------------------------------------------------------------------


def int_array(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def int_attr(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


def get_ints(props: Props, name: str) -> tuple[int, ...]:
    attr = props[name]
    assert isinstance(attr, DenseArrayBase)
    return tuple(int(v) for v in attr.get_values())


def get_int(props: Props, name: str) -> int:
    attr = props[name]
    assert isinstance(attr, IntegerAttr)
    return attr.value.data


def tensor(element_type: Attribute, shape: Sequence[int]) -> TensorType:
    return TensorType(element_type, list(shape))


def same_dtype(op: str, *types: TensorType) -> None:
    first = types[0].element_type
    for t in types[1:]:
        if t.element_type != first:
            raise ShapeError(
                f"dtype clash in {op}: {format_type(types[0])} and {format_type(t)} "
                "(insert an explicit cast)"
            )


def require_float(op: str, t: TensorType) -> None:
    if not is_float(t):
        raise ShapeError(f"{op} needs a floating-point tensor, got {format_type(t)}")


def axis_of(op: str, t: TensorType, axis: int) -> int:
    """`axis` of `t` made non-negative; a ShapeError naming the op and the type if invalid."""
    try:
        return normalize_axis(axis, t.get_num_dims())
    except ShapeError as e:
        raise ShapeError(f"{op} on {format_type(t)}: {e}") from None


def require_rank(op: str, t: TensorType, rank: int, layout: str = "") -> None:
    if t.get_num_dims() != rank:
        hint = f" ({layout})" if layout else ""
        raise ShapeError(f"{op} needs a rank-{rank} tensor{hint}, got {format_type(t)}")


# --- base classes ------------------------------------------------------------------------------


CANONICALIZATIONS: dict[type[Operation], list[RewritePattern]] = {}
"""Op class -> its canonicalisation patterns, filled by `canonicalizes` in `nn_patterns.py`."""


def canonicalizes(*op_classes: type[Operation]):
    """Register a pattern class as a canonicalisation of `op_classes` (in registration order)."""

    def register(pattern: type[RewritePattern]) -> type[RewritePattern]:
        for op_class in op_classes:
            CANONICALIZATIONS.setdefault(op_class, []).append(pattern())
        return pattern

    return register


class NNOp(IRDLOperation, HasCanonicalizationPatternsInterface):
    """An op whose single result type follows from its operands and properties."""

    irdl_options = (ParsePropInAttrDict(),)

    @classmethod
    def get_canonicalization_patterns(cls) -> tuple[RewritePattern, ...]:
        return tuple(CANONICALIZATIONS.get(cls, ()))

    @classmethod
    def infer(
        cls, operand_types: Sequence[TensorType], props: Props, result_type: TensorType | None
    ) -> TensorType:
        raise NotImplementedError

    @classmethod
    def build_inferred(
        cls,
        operands: Sequence[SSAValue | Sequence[SSAValue]],
        props: Props | None = None,
        result_type: TensorType | None = None,
    ) -> Self:
        """Create the op with its inferred result type; raises ShapeError on bad operands."""
        props = dict(props or {})
        types = [v.type for o in operands for v in (o if isinstance(o, Sequence) else [o])]
        inferred = cls.infer(types, props, result_type)  # type: ignore[arg-type]
        missing_optional = len(cls.get_irdl_definition().operands) - len(operands)
        operands = [*operands, *[[]] * missing_optional]
        return cls(operands=operands, properties=props, result_types=[inferred])

    def verify_(self) -> None:
        actual = self.results[0].type
        try:
            expected = self.infer([o.type for o in self.operands], self.properties, actual)  # type: ignore[arg-type]
        except ShapeError as e:
            message = str(e) if str(e).startswith(self.name) else f"{self.name}: {e}"
            raise VerifyException(message) from e
        assert isinstance(actual, TensorType)
        if expected.element_type != actual.element_type or not shapes_compatible(
            expected.get_shape(), actual.get_shape()
        ):
            raise VerifyException(
                f"{self.name}: result type {format_type(actual)} does not match the "
                f"inferred type {format_type(expected)}"
            )


class UnaryOp(NNOp):
    """Elementwise `f(x)` with the type of `x`."""

    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    res = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($res)"
    FLOAT_ONLY: ClassVar[bool] = True

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        if cls.FLOAT_ONLY:
            require_float(cls.name, x)
        elif is_bool(x):
            raise ShapeError(f"{cls.name} is not defined on bool tensors")
        return x


def broadcast_pair(op: str, lhs: TensorType, rhs: TensorType) -> tuple[int, ...]:
    same_dtype(op, lhs, rhs)
    try:
        return broadcast_shapes(lhs.get_shape(), rhs.get_shape())
    except ShapeError:
        raise ShapeError(
            f"{op}: cannot broadcast {format_type(lhs)} and {format_type(rhs)}"
        ) from None


class BinaryOp(NNOp):
    """Elementwise `f(lhs, rhs)` with NumPy broadcasting; both operands share a dtype."""

    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    res = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"
    FLOAT_ONLY: ClassVar[bool] = False

    @classmethod
    def infer(cls, operand_types, props, result_type):
        lhs, rhs = operand_types
        shape = broadcast_pair(cls.name, lhs, rhs)
        if cls.FLOAT_ONLY:
            require_float(cls.name, lhs)
        elif is_bool(lhs):
            raise ShapeError(f"{cls.name} is not defined on bool tensors")
        return tensor(lhs.element_type, shape)


class ShapeOp(NNOp):
    """One tensor in, one tensor out, types spelled in full: `: f32[...] -> f32[...]`."""

    input = operand_def(TensorType)
    res = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($res)"


# --- elementwise -------------------------------------------------------------------------------


@irdl_op_definition
class NegOp(UnaryOp):
    """Negation, `-x`.

    ```mlir
    %1 = nn.neg %0 : tensor<?x10xf32>
    ```
    """

    name = "nn.neg"
    traits = traits_def(Pure(), elementwise("-x"))
    FLOAT_ONLY: ClassVar[bool] = False


@irdl_op_definition
class AbsOp(UnaryOp):
    """Absolute value `|x|`; its derivative at 0 is taken as 0.

    ```mlir
    %1 = nn.abs %0 : tensor<4xf32>
    ```
    """

    name = "nn.abs"
    traits = traits_def(Pure(), elementwise("abs(x)"))
    FLOAT_ONLY: ClassVar[bool] = False


@irdl_op_definition
class ExpOp(UnaryOp):
    """`e ** x`.

    ```mlir
    %1 = nn.exp %0 : tensor<?x10xf32>
    ```
    """

    name = "nn.exp"
    traits = traits_def(Pure(), elementwise("exp(x)"))


@irdl_op_definition
class LogOp(UnaryOp):
    """Natural logarithm.

    ```mlir
    %1 = nn.log %0 : tensor<?x10xf32>
    ```
    """

    name = "nn.log"
    traits = traits_def(Pure(), elementwise("log(x)"))


@irdl_op_definition
class SqrtOp(UnaryOp):
    """Square root.

    ```mlir
    %1 = nn.sqrt %0 : tensor<64xf32>
    ```
    """

    name = "nn.sqrt"
    traits = traits_def(Pure(), elementwise("sqrt(x)"))


@irdl_op_definition
class TanhOp(UnaryOp):
    """Hyperbolic tangent.

    ```mlir
    %1 = nn.tanh %0 : tensor<?x128xf32>
    ```
    """

    name = "nn.tanh"
    traits = traits_def(Pure(), elementwise("tanh(x)"))


@irdl_op_definition
class SigmoidOp(UnaryOp):
    """Logistic sigmoid `1 / (1 + exp(-x))`, evaluated without overflow.

    ```mlir
    %1 = nn.sigmoid %0 : tensor<?x1xf32>
    ```
    """

    name = "nn.sigmoid"
    traits = traits_def(Pure(), elementwise("1 / (1 + exp(-x))"))


@irdl_op_definition
class ReluOp(UnaryOp):
    """`max(x, 0)`; its derivative at 0 is taken as 0.

    ```mlir
    %1 = nn.relu %0 : tensor<?x128xf32>
    ```
    """

    name = "nn.relu"
    traits = traits_def(Pure(), elementwise("maximum(x, 0)"))


@irdl_op_definition
class GeluOp(UnaryOp):
    """Gaussian error linear unit, `x * Phi(x)`. `approximate = "none"` computes it exactly,
    `0.5 x (1 + erf(x / sqrt 2))` (PyTorch's default); without the property (or with
    `"tanh"`) it is the tanh approximation, GPT-2's and PyTorch's `approximate="tanh"`.

    ```mlir
    %1 = nn.gelu %0 {approximate = "none"} : tensor<?x256xf32>
    ```
    """

    name = "nn.gelu"
    approximate = opt_prop_def(StringAttr)
    traits = traits_def(Pure(), Elementwise(lambda op: GELU[GeluOp.approximation(op)]))

    @classmethod
    def infer(cls, operand_types, props, result_type):
        mode = props.get("approximate")
        if isinstance(mode, StringAttr) and mode.data not in GELU:
            raise ShapeError(f'nn.gelu: approximate must be "tanh" or "none", got "{mode.data}"')
        return super().infer(operand_types, props, result_type)

    @staticmethod
    def approximation(op: Operation) -> str:
        mode = op.properties.get("approximate")
        return mode.data if isinstance(mode, StringAttr) else "tanh"


GELU = {
    "tanh": Formula("0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))"),
    "none": Formula("0.5 * x * (1 + erf(x * 0.7071067811865476))"),
}
"""The formula of each `approximate` mode of `nn.gelu` (0.797... is sqrt(2 / pi))."""


@irdl_op_definition
class ErfOp(UnaryOp):
    """The error function, `2 / sqrt(pi) * integral of exp(-t^2) from 0 to x`.

    ```mlir
    %1 = nn.erf %0 : tensor<?x256xf32>
    ```
    """

    name = "nn.erf"
    traits = traits_def(Pure(), elementwise("erf(x)"))


@irdl_op_definition
class AddOp(BinaryOp):
    """Sum with broadcasting.

    ```mlir
    %2 = nn.add %0, %1 : (tensor<?x128xf32>, tensor<128xf32>) -> tensor<?x128xf32>
    ```
    """

    name = "nn.add"
    traits = traits_def(Pure(), elementwise("x + y", "x", "y"))


@irdl_op_definition
class SubOp(BinaryOp):
    """Difference with broadcasting.

    ```mlir
    %2 = nn.sub %0, %1 : (tensor<?x10xf32>, tensor<?x10xf32>) -> tensor<?x10xf32>
    ```
    """

    name = "nn.sub"
    traits = traits_def(Pure(), elementwise("x - y", "x", "y"))


@irdl_op_definition
class MulOp(BinaryOp):
    """Product with broadcasting.

    ```mlir
    %2 = nn.mul %0, %1 : (tensor<?x10xf32>, tensor<f32>) -> tensor<?x10xf32>
    ```
    """

    name = "nn.mul"
    traits = traits_def(Pure(), elementwise("x * y", "x", "y"))


@irdl_op_definition
class DivOp(BinaryOp):
    """Quotient with broadcasting (true division; floats only).

    ```mlir
    %2 = nn.div %0, %1 : (tensor<?x10xf32>, tensor<?x1xf32>) -> tensor<?x10xf32>
    ```
    """

    name = "nn.div"
    traits = traits_def(Pure(), elementwise("x / y", "x", "y"))
    FLOAT_ONLY: ClassVar[bool] = True


@irdl_op_definition
class PowOp(BinaryOp):
    """`lhs ** rhs` with broadcasting (floats only).

    ```mlir
    %2 = nn.pow %0, %1 : (tensor<?x10xf32>, tensor<f32>) -> tensor<?x10xf32>
    ```
    """

    name = "nn.pow"
    traits = traits_def(Pure(), elementwise("x ** y", "x", "y"))
    FLOAT_ONLY: ClassVar[bool] = True


@irdl_op_definition
class MaximumOp(BinaryOp):
    """Elementwise maximum with broadcasting; ties send the gradient to `lhs`.

    ```mlir
    %2 = nn.maximum %0, %1 : (tensor<?x10xf32>, tensor<f32>) -> tensor<?x10xf32>
    ```
    """

    name = "nn.maximum"
    traits = traits_def(Pure(), elementwise("maximum(x, y)", "x", "y"))


@irdl_op_definition
class MinimumOp(BinaryOp):
    """Elementwise minimum with broadcasting; ties send the gradient to `lhs`.

    ```mlir
    %2 = nn.minimum %0, %1 : (tensor<?x10xf32>, tensor<f32>) -> tensor<?x10xf32>
    ```
    """

    name = "nn.minimum"
    traits = traits_def(Pure(), elementwise("minimum(x, y)", "x", "y"))


class IntegerBinaryOp(BinaryOp):
    """A `BinaryOp` on integer tensors only, whose result carries no derivative."""

    @classmethod
    def infer(cls, operand_types, props, result_type):
        result = super().infer(operand_types, props, result_type)
        if not is_int(operand_types[0]):
            raise ShapeError(
                f"{cls.name} takes integer tensors, not {format_type(operand_types[0])}"
            )
        return result


@irdl_op_definition
class FloorDivOp(IntegerBinaryOp):
    """Integer division rounding towards minus infinity, `lhs // rhs`, as Python's and NumPy's
    (`-7 // 2` is -4). A zero divisor gives 0 on the reference and cpu targets, as NumPy does.

    ```mlir
    %2 = nn.floor_div %0, %1 : (tensor<?x8xi32>, tensor<i32>) -> tensor<?x8xi32>
    ```
    """

    name = "nn.floor_div"
    traits = traits_def(Pure(), elementwise("x // y", "x", "y"), NotDifferentiable())


@irdl_op_definition
class ModOp(IntegerBinaryOp):
    """The remainder of `nn.floor_div`, `lhs % rhs`, with the sign of `rhs`, as Python's and
    NumPy's (`-7 % 2` is 1); `(a // b) * b + a % b == a`.

    ```mlir
    %2 = nn.mod %0, %1 : (tensor<?x8xi32>, tensor<i32>) -> tensor<?x8xi32>
    ```
    """

    name = "nn.mod"
    traits = traits_def(Pure(), elementwise("x % y", "x", "y"), NotDifferentiable())


def counts_padding(op: AvgPool2dOp | AvgPool2dGradOp) -> bool:
    """Whether padded zeros count in the divisor of an average pool."""
    return "exclude_pad" not in op.properties


COMPARISONS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
"""Each predicate of `nn.cmp` and the comparison it makes."""


def comparison(op: Operation) -> Formula:
    predicate = op.properties["predicate"]
    assert isinstance(predicate, StringAttr)
    return COMPARISON_FORMULAS[predicate.data]


COMPARISON_FORMULAS = {p: Formula(f"x {c} y", ("x", "y")) for p, c in COMPARISONS.items()}


@irdl_op_definition
class CmpOp(NNOp):
    """Elementwise comparison with broadcasting; the result is a bool (`i1`) tensor.
    `predicate` is one of eq, ne, lt, le, gt, ge. Not differentiable.

    ```mlir
    %2 = nn.cmp "gt", %0, %1 : (tensor<?x10xf32>, tensor<f32>) -> tensor<?x10xi1>
    ```
    """

    name = "nn.cmp"
    predicate = prop_def(StringAttr)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    res = result_def(TensorType)
    traits = traits_def(Pure(), Elementwise(comparison), NotDifferentiable())
    assembly_format = (
        "$predicate `,` $lhs `,` $rhs attr-dict `:` functional-type(operands, results)"
    )

    @classmethod
    def infer(cls, operand_types, props, result_type):
        predicate = props["predicate"]
        assert isinstance(predicate, StringAttr)
        if predicate.data not in COMPARISONS:
            raise ShapeError(
                f"nn.cmp: unknown comparison {predicate.data!r}; use one of {tuple(COMPARISONS)}"
            )
        return tensor(i1, broadcast_pair(cls.name, *operand_types))


@irdl_op_definition
class SelectOp(NNOp):
    """`cond ? on_true : on_false` elementwise, all three broadcast together.

    ```mlir
    %3 = nn.select %0, %1, %2 : (tensor<?x10xi1>, tensor<?x10xf32>, tensor<f32>) -> tensor<?x10xf32>
    ```
    """

    name = "nn.select"
    cond = operand_def(TensorType)
    on_true = operand_def(TensorType)
    on_false = operand_def(TensorType)
    res = result_def(TensorType)
    traits = traits_def(Pure(), elementwise("where(c, x, y)", "c", "x", "y"))
    assembly_format = (
        "$cond `,` $on_true `,` $on_false attr-dict `:` functional-type(operands, results)"
    )

    @classmethod
    def infer(cls, operand_types, props, result_type):
        cond, a, b = operand_types
        if not is_bool(cond):
            raise ShapeError(f"nn.select needs a bool condition, got {format_type(cond)}")
        same_dtype(cls.name, a, b)
        try:
            shape = broadcast_shapes(cond.get_shape(), a.get_shape(), b.get_shape())
        except ShapeError:
            raise ShapeError(
                f"nn.select: cannot broadcast {format_type(cond)}, {format_type(a)} "
                f"and {format_type(b)}"
            ) from None
        return tensor(a.element_type, shape)


@irdl_op_definition
class CastOp(ShapeOp):
    """Convert the element type; the shape is unchanged. Float to int truncates toward zero.
    The result may have `?` where the input is static (like MLIR's `tensor.cast`).

    ```mlir
    %1 = nn.cast %0 : tensor<?xi64> -> tensor<?xf32>
    ```
    """

    name = "nn.cast"
    traits = traits_def(Pure(), elementwise("cast(x)"))

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        if result_type is None:
            raise ShapeError("nn.cast needs a result type")
        if not shapes_compatible(x.get_shape(), result_type.get_shape()):
            raise ShapeError(
                f"nn.cast cannot change the shape: {format_type(x)} to {format_type(result_type)}"
            )
        return result_type


@irdl_op_definition
class ConstantOp(NNOp):
    """A dense constant, usually a scalar that a binary op broadcasts.

    ```mlir
    %0 = nn.constant dense<1.000000e+00> : tensor<f32>
    ```
    """

    name = "nn.constant"
    T: ClassVar = VarConstraint("T", AnyAttr())
    value = prop_def(ParamAttrConstraint(DenseIntOrFPElementsAttr, (T, AnyAttr())))
    res = result_def(T)
    traits = traits_def(Pure(), ConstantLike(), HostOnly(), ShapeOnly())
    assembly_format = "attr-dict $value"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        value = props["value"]
        assert isinstance(value, DenseIntOrFPElementsAttr)
        return value.get_type()

    @classmethod
    def scalar(cls, value: float | int, element_type: Attribute) -> ConstantOp:
        attr = DenseIntOrFPElementsAttr.from_list(tensor(element_type, []), [value])
        return cls.build_inferred([], {"value": attr})

    def splat_value(self) -> float | int | None:
        """The value of every element when they are all equal, else None."""
        values = self.value.get_values()
        return values[0] if values and all(v == values[0] for v in values) else None


# --- linear algebra and layout -----------------------------------------------------------------


@irdl_op_definition
class MatmulOp(NNOp):
    """Matrix product `lhs @ rhs`: `[..., M, K] @ [..., K, N] -> [..., M, N]`, leading (batch)
    dimensions broadcast as in NumPy.

    ```mlir
    %2 = nn.matmul %0, %1 : (tensor<?x784xf32>, tensor<784x128xf32>) -> tensor<?x128xf32>
    ```
    """

    name = "nn.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    res = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        a, b = operand_types
        same_dtype(cls.name, a, b)
        if is_bool(a):
            raise ShapeError("nn.matmul is not defined on bool tensors")
        sa, sb = a.get_shape(), b.get_shape()
        if len(sa) < 2 or len(sb) < 2:
            raise ShapeError(
                f"nn.matmul needs operands of rank 2 or more, got {format_type(a)} and "
                f"{format_type(b)}"
            )
        if not dims_compatible(sa[-1], sb[-2]):
            raise ShapeError(
                f"nn.matmul: inner dimensions differ: {format_type(a)} @ {format_type(b)} "
                f"({sa[-1]} vs {sb[-2]})"
            )
        try:
            batch = broadcast_shapes(sa[:-2], sb[:-2])
        except ShapeError:
            raise ShapeError(
                f"nn.matmul: batch dimensions of {format_type(a)} and {format_type(b)} "
                "do not broadcast"
            ) from None
        return tensor(a.element_type, (*batch, sa[-2], sb[-1]))


@irdl_op_definition
class TransposeOp(ShapeOp):
    """Permute the dimensions: result dim `i` is input dim `perm[i]`.

    ```mlir
    %1 = nn.transpose %0 {perm = array<i64: 1, 0>} : tensor<?x10xf32> -> tensor<10x?xf32>
    ```
    """

    name = "nn.transpose"
    perm = prop_def(DenseArrayBase[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        perm = get_ints(props, "perm")
        if sorted(perm) != list(range(x.get_num_dims())):
            raise ShapeError(
                f"nn.transpose: {list(perm)} is not a permutation of the "
                f"{x.get_num_dims()} dimensions of {format_type(x)}"
            )
        return tensor(x.element_type, [x.get_shape()[p] for p in perm])


@irdl_op_definition
class ReshapeOp(ShapeOp):
    """Same elements, new shape (row-major). The result type is the target shape; one `?` in
    it is inferred from the element count at run time.

    ```mlir
    %1 = nn.reshape %0 : tensor<?x1x28x28xf32> -> tensor<?x784xf32>
    ```
    """

    name = "nn.reshape"
    traits = traits_def(Pure(), View())

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        if result_type is None:
            raise ShapeError("nn.reshape needs a target shape")
        src, dst = x.get_shape(), result_type.get_shape()
        dyn_out = dst.count(DYN)
        if dyn_out > 1:
            raise ShapeError(f"nn.reshape: target {format_shape(dst)} has more than one `?`")
        n_in, p_out = num_elements(src), static_product(dst)
        if n_in is None:
            # A run-time size can only be absorbed by a `?` in the target.
            bad = dyn_out == 0
        else:
            bad = n_in != p_out if dyn_out == 0 else (p_out == 0 or n_in % p_out != 0)
        if bad:
            raise ShapeError(
                f"nn.reshape: cannot reshape {format_type(x)} into {format_shape(dst)} "
                "(element counts differ)"
            )
        return tensor(x.element_type, dst)


@irdl_op_definition
class BroadcastToOp(NNOp):
    """Broadcast to the result shape (NumPy rules). A `?` in the result takes its size from the
    optional `like` operand, so broadcasting stays explicit even when sizes are only known at
    run time: from the same dimension of `like`, which then has the result's shape, or, with
    `like_axes` (one entry per result axis), from the axis of `like` that its entry names. An
    entry -1 names none: that axis has its static size, or for a `?` the input's size there.
    So `zeros([N, 16])` in a model of `x: f32[N, 8]` broadcasts a scalar like `x` with
    `like_axes = array<i64: 0, -1>`.

    ```mlir
    %2 = nn.broadcast_to %0 like %1 : (tensor<1x10xf32>, tensor<?x10xf32>) -> tensor<?x10xf32>
    ```
    """

    name = "nn.broadcast_to"
    input = operand_def(TensorType)
    like = opt_operand_def(TensorType)
    like_axes = opt_prop_def(DenseArrayBase[I64])
    res = result_def(TensorType)
    traits = traits_def(Pure(), Elementwise(Formula("x"), in_place=False, shape_operands=(1,)))
    assembly_format = "$input (`like` $like^)? attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        x = operand_types[0]
        if result_type is None:
            raise ShapeError("nn.broadcast_to needs a target shape")
        target = result_type.get_shape()
        src = x.get_shape()
        padded = (1,) * (len(target) - len(src)) + tuple(src)
        if len(src) > len(target) or any(
            s not in (1, DYN) and not dims_compatible(s, t) for s, t in zip(padded, target)
        ):
            raise ShapeError(
                f"nn.broadcast_to: cannot broadcast {format_type(x)} to {format_shape(target)}"
            )
        if len(operand_types) == 2:
            check_like(operand_types[1], props, target, padded)
        elif "like_axes" in props:
            raise ShapeError("nn.broadcast_to: `like_axes` needs a `like` operand")
        elif DYN in target:
            raise ShapeError("nn.broadcast_to to a shape with `?` needs a `like` operand")
        return tensor(x.element_type, target)

    def like_axis_map(self) -> tuple[int, ...]:
        """The axis of `like` that sizes each result axis, -1 where none does."""
        rank = self.res.type.get_num_dims()
        if self.like is None:
            return (-1,) * rank
        if self.like_axes is None:
            return tuple(range(rank))
        return get_ints(self.properties, "like_axes")


def check_like(
    like: TensorType, props: Props, target: Sequence[int], padded: Sequence[int]
) -> None:
    """`nn.broadcast_to`'s `like` sizes every `?` of `target` that the input (`padded` to the
    target's rank) does not."""
    if "like_axes" not in props:
        if not shapes_compatible(like.get_shape(), target):
            raise ShapeError(
                f"nn.broadcast_to: `like` operand {format_type(like)} does not have the "
                f"target shape {format_shape(target)}"
            )
        return
    axes, sizes = get_ints(props, "like_axes"), like.get_shape()
    if len(axes) != len(target) or not all(-1 <= a < len(sizes) for a in axes):
        raise ShapeError(
            f"nn.broadcast_to: like_axes {list(axes)} must name, for each of the {len(target)} "
            f"result axes, an axis of {format_type(like)} or -1"
        )
    for i, (a, t) in enumerate(zip(axes, target)):
        if a >= 0 and not dims_compatible(sizes[a], t):
            raise ShapeError(
                f"nn.broadcast_to: axis {a} of `like` operand {format_type(like)} cannot size "
                f"axis {i} of the target shape {format_shape(target)}"
            )
        if a < 0 and t == DYN and padded[i] != DYN:
            raise ShapeError(
                f"nn.broadcast_to: nothing sizes axis {i} of the target shape "
                f"{format_shape(target)}: its like_axes entry is -1 and the input's size is static"
            )


# --- reductions and normalisations -------------------------------------------------------------


class ReduceOp(ShapeOp):
    """Reduce over `axes` (all axes when empty), keeping them as size 1 with `keepdims`."""

    axes = prop_def(DenseArrayBase[I64])
    keepdims = opt_prop_def(UnitAttr)

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        if is_bool(x):
            raise ShapeError(f"{cls.name} is not defined on bool tensors")
        rank = x.get_num_dims()
        axes = {axis_of(cls.name, x, a) for a in get_ints(props, "axes")} or set(range(rank))
        keep = "keepdims" in props
        shape = [
            1 if i in axes else d for i, d in enumerate(x.get_shape()) if keep or i not in axes
        ]
        return tensor(x.element_type, shape)


@irdl_op_definition
class ReduceSumOp(ReduceOp):
    """Sum over axes.

    ```mlir
    %1 = nn.reduce_sum %0 {axes = array<i64: 1>, keepdims} : tensor<?x10xf32> -> tensor<?x1xf32>
    ```
    """

    name = "nn.reduce_sum"
    traits = traits_def(Pure(), Reduction("sum"))


@irdl_op_definition
class ReduceMeanOp(ReduceOp):
    """Arithmetic mean over axes (floats only).

    ```mlir
    %1 = nn.reduce_mean %0 {axes = array<i64>} : tensor<?xf32> -> tensor<f32>
    ```
    """

    name = "nn.reduce_mean"
    traits = traits_def(Pure(), Reduction("sum", mean=True))

    @classmethod
    def infer(cls, operand_types, props, result_type):
        require_float(cls.name, operand_types[0])
        return super().infer(operand_types, props, result_type)


@irdl_op_definition
class ReduceMaxOp(ReduceOp):
    """Maximum over axes; ties share the gradient equally.

    ```mlir
    %1 = nn.reduce_max %0 {axes = array<i64: 1>} : tensor<?x10xf32> -> tensor<?xf32>
    ```
    """

    name = "nn.reduce_max"
    traits = traits_def(Pure(), Reduction("max"))


@irdl_op_definition
class ArgmaxOp(ShapeOp):
    """Index of the maximum along `axis` (first one on ties), as i64. Not differentiable.

    ```mlir
    %1 = nn.argmax %0 {axis = 1 : i64} : tensor<?x10xf32> -> tensor<?xi64>
    ```
    """

    name = "nn.argmax"
    traits = traits_def(Pure(), NotDifferentiable())
    axis = prop_def(IntegerAttr[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        axis = axis_of(cls.name, x, get_int(props, "axis"))
        shape = [d for i, d in enumerate(x.get_shape()) if i != axis]
        return tensor(i64, shape)


class SoftmaxLikeOp(UnaryOp):
    axis = prop_def(IntegerAttr[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        require_float(cls.name, x)
        axis_of(cls.name, x, get_int(props, "axis"))
        return x


@irdl_op_definition
class SoftmaxOp(SoftmaxLikeOp):
    """`exp(x - max) / sum(exp(x - max))` along `axis`, stable for large inputs.

    ```mlir
    %1 = nn.softmax %0 {axis = 1 : i64} : tensor<?x10xf32>
    ```
    """

    name = "nn.softmax"


@irdl_op_definition
class LogSoftmaxOp(SoftmaxLikeOp):
    """`x - logsumexp(x)` along `axis`, stable for large inputs; the building block of
    cross-entropy.

    ```mlir
    %1 = nn.log_softmax %0 {axis = 1 : i64} : tensor<?x10xf32>
    ```
    """

    name = "nn.log_softmax"


# --- convolution and pooling -------------------------------------------------------------------


class ConvWindowOp(NNOp):
    """A convolution or one of its gradients: two tensors in, the window's properties."""

    res = result_def(TensorType)
    stride = prop_def(DenseArrayBase[I64])
    padding = prop_def(DenseArrayBase[I64])
    dilation = prop_def(DenseArrayBase[I64])
    groups = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())


@irdl_op_definition
class Conv2dOp(ConvWindowOp):
    """2-D convolution (cross-correlation, as in PyTorch): input NCHW, weight OIHW with
    `I = C / groups`; `stride`, `padding` (symmetric, per spatial axis) and `dilation` are
    `[h, w]` pairs.

    ```mlir
    %2 = nn.conv2d %0, %1 {stride = array<i64: 1, 1>, padding = array<i64: 2, 2>,
           dilation = array<i64: 1, 1>, groups = 1 : i64}
           : (tensor<?x1x28x28xf32>, tensor<6x1x5x5xf32>) -> tensor<?x6x28x28xf32>
    ```
    """

    name = "nn.conv2d"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    assembly_format = "$input `,` $weight attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        x, w = operand_types
        same_dtype(cls.name, x, w)
        require_float(cls.name, x)
        require_rank(cls.name, x, 4, "NCHW input")
        require_rank(cls.name, w, 4, "OIHW weight")
        n, c, h, wd = x.get_shape()
        o, i, kh, kw = w.get_shape()
        stride, pad, dil = (get_ints(props, k) for k in ("stride", "padding", "dilation"))
        groups = get_int(props, "groups")
        check_window_props(cls.name, stride=stride, padding=pad, dilation=dil)
        if groups < 1 or (c != DYN and c % groups) or (o != DYN and o % groups):
            raise ShapeError(
                f"nn.conv2d: groups={groups} must divide the {'?' if c == DYN else c} input "
                f"and {'?' if o == DYN else o} output channels"
            )
        if c != DYN and i != DYN and c != i * groups:
            raise ShapeError(
                f"nn.conv2d: input {format_type(x)} has {c} channels but weight "
                f"{format_type(w)} expects {i * groups} (I={i} x groups={groups})"
            )
        try:
            oh = window_output_size(h, kh, stride[0], pad[0], dil[0])
            ow = window_output_size(wd, kw, stride[1], pad[1], dil[1])
        except ShapeError as e:
            raise ShapeError(f"nn.conv2d on {format_type(x)} with {format_type(w)}: {e}") from None
        return tensor(x.element_type, (n, o, oh, ow))


def check_window_props(op: str, **pairs: Sequence[int]) -> None:
    for name, pair in pairs.items():
        least = 0 if name == "padding" else 1
        if len(pair) != 2 or any(v < least for v in pair):
            raise ShapeError(f"{op}: {name} must be two integers >= {least}, got {list(pair)}")


class PoolOp(ShapeOp):
    """2-D pooling over NCHW input with a `kernel` window, `stride` and zero `padding`."""

    kernel = prop_def(DenseArrayBase[I64])
    stride = prop_def(DenseArrayBase[I64])
    padding = prop_def(DenseArrayBase[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        require_float(cls.name, x)
        require_rank(cls.name, x, 4, "NCHW input")
        kernel, stride, pad = (get_ints(props, k) for k in ("kernel", "stride", "padding"))
        check_window_props(cls.name, kernel=kernel, stride=stride, padding=pad)
        if any(p > k // 2 for p, k in zip(pad, kernel)):
            raise ShapeError(
                f"{cls.name}: padding {list(pad)} exceeds half the kernel {list(kernel)}"
            )
        n, c, h, w = x.get_shape()
        try:
            oh = window_output_size(h, kernel[0], stride[0], pad[0])
            ow = window_output_size(w, kernel[1], stride[1], pad[1])
        except ShapeError as e:
            raise ShapeError(f"{cls.name} on {format_type(x)}: {e}") from None
        return tensor(x.element_type, (n, c, oh, ow))


@irdl_op_definition
class MaxPool2dOp(PoolOp):
    """Maximum over each window (padding never wins).

    ```mlir
    %1 = nn.max_pool2d %0 {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>,
           padding = array<i64: 0, 0>} : tensor<?x6x28x28xf32> -> tensor<?x6x14x14xf32>
    ```
    """

    name = "nn.max_pool2d"


@irdl_op_definition
class AvgPool2dOp(PoolOp):
    """Mean over each window; padded zeros count in the divisor (PyTorch's default,
    `count_include_pad=True`), unless the unit property `exclude_pad` is set: then each window's
    mean is over its pixels inside the input (ONNX's default, TensorFlow's `SAME` pooling).

    ```mlir
    %1 = nn.avg_pool2d %0 {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>,
           padding = array<i64: 1, 1>, exclude_pad} : tensor<?x6x28x28xf32> -> tensor<?x6x14x14xf32>
    ```
    """

    name = "nn.avg_pool2d"
    exclude_pad = opt_prop_def(UnitAttr)


# --- indexing ----------------------------------------------------------------------------------


@irdl_op_definition
class GatherOp(NNOp):
    """`np.take(input, indices, axis)`: rows of an embedding table, for example. The result shape
    is `input[:axis] + indices + input[axis+1:]`. Differentiable in `input` only.

    ```mlir
    %2 = nn.gather %0, %1 {axis = 0 : i64}
           : (tensor<65x16xf32>, tensor<?x8xi32>) -> tensor<?x8x16xf32>
    ```
    """

    name = "nn.gather"
    input = operand_def(TensorType)
    indices = operand_def(TensorType)
    res = result_def(TensorType)
    axis = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    assembly_format = "$input `,` $indices attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        x, idx = operand_types
        if not is_int(idx):
            raise ShapeError(f"nn.gather needs integer indices, got {format_type(idx)}")
        shape = x.get_shape()
        axis = axis_of(cls.name, x, get_int(props, "axis"))
        return tensor(x.element_type, (*shape[:axis], *idx.get_shape(), *shape[axis + 1 :]))


@irdl_op_definition
class OneHotOp(ShapeOp):
    """`indices[..., None] == arange(num_classes)` as a float tensor. Not differentiable.

    ```mlir
    %1 = nn.one_hot %0 {num_classes = 10 : i64} : tensor<?xi32> -> tensor<?x10xf32>
    ```
    """

    name = "nn.one_hot"
    traits = traits_def(Pure(), Elementwise(in_place=False), NotDifferentiable())
    num_classes = prop_def(IntegerAttr[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (idx,) = operand_types
        if not is_int(idx):
            raise ShapeError(f"nn.one_hot needs integer indices, got {format_type(idx)}")
        classes = get_int(props, "num_classes")
        if classes < 1:
            raise ShapeError(f"nn.one_hot needs num_classes >= 1, got {classes}")
        element = result_type.element_type if result_type else None
        if element is None or not is_float(tensor(element, [])):
            raise ShapeError("nn.one_hot produces a float tensor")
        return tensor(element, (*idx.get_shape(), classes))


@irdl_op_definition
class ConcatOp(NNOp):
    """Join tensors along `axis`; the other dimensions must agree.

    ```mlir
    %2 = nn.concat %0, %1 {axis = 1 : i64}
           : (tensor<?x16xf32>, tensor<?x16xf32>) -> tensor<?x32xf32>
    ```
    """

    name = "nn.concat"
    inputs = var_operand_def(TensorType)
    res = result_def(TensorType)
    axis = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    assembly_format = "$inputs attr-dict `:` functional-type($inputs, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        if not operand_types:
            raise ShapeError("nn.concat needs at least one tensor")
        first = operand_types[0]
        same_dtype(cls.name, *operand_types)
        rank = first.get_num_dims()
        if rank == 0:
            raise ShapeError(f"nn.concat needs tensors of rank 1 or more, got {format_type(first)}")
        axis = axis_of(cls.name, first, get_int(props, "axis"))
        for t in operand_types[1:]:
            others_agree = t.get_num_dims() == rank and all(
                dims_compatible(a, b)
                for i, (a, b) in enumerate(zip(first.get_shape(), t.get_shape()))
                if i != axis
            )
            if not others_agree:
                raise ShapeError(
                    f"nn.concat along axis {axis}: {format_type(first)} and {format_type(t)} "
                    "differ in another dimension"
                )
        sizes = [t.get_shape()[axis] for t in operand_types]
        joined = DYN if DYN in sizes else sum(sizes)
        shape = list(first.get_shape())
        shape[axis] = joined
        return tensor(first.element_type, shape)


SLICE_END = 2**62
"""`stops` value meaning "to the end of the dimension" (needed where the size is `?`)."""


@irdl_op_definition
class SliceOp(ShapeOp):
    """`x[start:stop:step]` per dimension with non-negative, already normalised bounds;
    a stop of 2**62 means "to the end".

    ```mlir
    %1 = nn.slice %0 {starts = array<i64: 0, 1>, stops = array<i64: 4611686018427387904, 3>,
           steps = array<i64: 1, 1>} : tensor<?x10xf32> -> tensor<?x2xf32>
    ```
    """

    name = "nn.slice"
    starts = prop_def(DenseArrayBase[I64])
    stops = prop_def(DenseArrayBase[I64])
    steps = prop_def(DenseArrayBase[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        starts, stops, steps = (get_ints(props, k) for k in ("starts", "stops", "steps"))
        shape = x.get_shape()
        if not len(starts) == len(stops) == len(steps) == len(shape):
            raise ShapeError(
                f"nn.slice needs one start/stop/step per dimension of {format_type(x)}"
            )
        out = []
        for size, start, stop, step in zip(shape, starts, stops, steps):
            if step < 1 or start < 0 or stop < start:
                raise ShapeError(f"nn.slice: bad bounds {start}:{stop}:{step}")
            if size == DYN:
                out.append(DYN if stop == SLICE_END else -(-(stop - start) // step))
            else:
                stop = min(stop, size)
                out.append(max(0, -(-(stop - start) // step)) if start < size else 0)
        return tensor(x.element_type, out)


# --- ops the autodiff pass writes --------------------------------------------------------------
# Each is the transpose (vector-Jacobian product) of a forward op. Its result type is given, not
# inferred, and checked by running the forward op's rule on it: the forward op applied to a value
# of the result type must produce the gradient's shape.


def require_result(op: str, result_type: TensorType | None) -> TensorType:
    if result_type is None:
        raise ShapeError(f"{op} needs its result type")
    return result_type


def forward_matches(op: str, forward: TensorType, grad: TensorType) -> None:
    if forward.element_type != grad.element_type or not shapes_compatible(
        forward.get_shape(), grad.get_shape()
    ):
        raise ShapeError(
            f"{op}: the forward op would produce {format_type(forward)}, "
            f"but the gradient is {format_type(grad)}"
        )


WINDOW_PROPS = ("stride", "padding", "dilation", "groups")


@irdl_op_definition
class Conv2dGradInputOp(ConvWindowOp):
    """Gradient of `nn.conv2d` with respect to its input (a transposed convolution of `grad`
    with `weight`). The result type is the forward input's type.

    ```mlir
    %2 = nn.conv2d_grad_input %0, %1 {stride = array<i64: 1, 1>, padding = array<i64: 0, 0>,
           dilation = array<i64: 1, 1>, groups = 1 : i64}
           : (tensor<?x6x24x24xf32>, tensor<6x1x5x5xf32>) -> tensor<?x1x28x28xf32>
    ```
    """

    name = "nn.conv2d_grad_input"
    grad = operand_def(TensorType)
    weight = operand_def(TensorType)
    assembly_format = "$grad `,` $weight attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        g, w = operand_types
        x = require_result(cls.name, result_type)
        forward_matches(cls.name, Conv2dOp.infer([x, w], props, None), g)
        return x


@irdl_op_definition
class Conv2dGradWeightOp(ConvWindowOp):
    """Gradient of `nn.conv2d` with respect to its weight (a correlation of the forward input
    with `grad`, summed over the batch). The result type is the weight's type.

    ```mlir
    %2 = nn.conv2d_grad_weight %0, %1 {stride = array<i64: 1, 1>, padding = array<i64: 0, 0>,
           dilation = array<i64: 1, 1>, groups = 1 : i64}
           : (tensor<?x1x28x28xf32>, tensor<?x6x24x24xf32>) -> tensor<6x1x5x5xf32>
    ```
    """

    name = "nn.conv2d_grad_weight"
    input = operand_def(TensorType)
    grad = operand_def(TensorType)
    assembly_format = "$input `,` $grad attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        x, g = operand_types
        w = require_result(cls.name, result_type)
        forward_matches(cls.name, Conv2dOp.infer([x, w], props, None), g)
        return w


@irdl_op_definition
class MaxPool2dGradOp(NNOp):
    """Gradient of `nn.max_pool2d`: each window's gradient goes to the first position holding
    the window's maximum in `input`; overlapping windows add up.

    ```mlir
    %2 = nn.max_pool2d_grad %0, %1 {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>,
           padding = array<i64: 0, 0>}
           : (tensor<?x6x28x28xf32>, tensor<?x6x14x14xf32>) -> tensor<?x6x28x28xf32>
    ```
    """

    name = "nn.max_pool2d_grad"
    input = operand_def(TensorType)
    grad = operand_def(TensorType)
    res = result_def(TensorType)
    kernel = prop_def(DenseArrayBase[I64])
    stride = prop_def(DenseArrayBase[I64])
    padding = prop_def(DenseArrayBase[I64])
    traits = traits_def(Pure())
    assembly_format = "$input `,` $grad attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        x, g = operand_types
        forward_matches(cls.name, MaxPool2dOp.infer([x], props, None), g)
        return x


@irdl_op_definition
class AvgPool2dGradOp(ShapeOp):
    """Gradient of `nn.avg_pool2d`: each window's gradient, divided by the window's divisor
    (its size, or with `exclude_pad` its pixels inside the input), spread over the window. The
    result type is the forward input's type.

    ```mlir
    %1 = nn.avg_pool2d_grad %0 {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>,
           padding = array<i64: 0, 0>} : tensor<?x6x14x14xf32> -> tensor<?x6x28x28xf32>
    ```
    """

    name = "nn.avg_pool2d_grad"
    kernel = prop_def(DenseArrayBase[I64])
    stride = prop_def(DenseArrayBase[I64])
    padding = prop_def(DenseArrayBase[I64])
    exclude_pad = opt_prop_def(UnitAttr)

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (g,) = operand_types
        x = require_result(cls.name, result_type)
        forward_matches(cls.name, AvgPool2dOp.infer([x], props, None), g)
        return x


@irdl_op_definition
class ScatterAddOp(NNOp):
    """Gradient of `nn.gather`: a zero tensor of the result type with each slice of `grad`
    added at its index along `axis` (repeated indices accumulate).

    ```mlir
    %2 = nn.scatter_add %0, %1 {axis = 0 : i64}
           : (tensor<?x8x16xf32>, tensor<?x8xi32>) -> tensor<65x16xf32>
    ```
    """

    name = "nn.scatter_add"
    grad = operand_def(TensorType)
    indices = operand_def(TensorType)
    res = result_def(TensorType)
    axis = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    assembly_format = "$grad `,` $indices attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        g, idx = operand_types
        table = require_result(cls.name, result_type)
        forward_matches(cls.name, GatherOp.infer([table, idx], props, None), g)
        return table


@irdl_op_definition
class SliceGradOp(ShapeOp):
    """Gradient of `nn.slice`: a zero tensor of the result type with `grad` written into the
    sliced positions.

    ```mlir
    %1 = nn.slice_grad %0 {starts = array<i64: 0, 1>, stops = array<i64: 4, 3>,
           steps = array<i64: 1, 1>} : tensor<4x2xf32> -> tensor<4x10xf32>
    ```
    """

    name = "nn.slice_grad"
    starts = prop_def(DenseArrayBase[I64])
    stops = prop_def(DenseArrayBase[I64])
    steps = prop_def(DenseArrayBase[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (g,) = operand_types
        x = require_result(cls.name, result_type)
        forward_matches(cls.name, SliceOp.infer([x], props, None), g)
        return x


@irdl_op_definition
class AxisSizeOp(ShapeOp):
    """The number of elements along `axes` of `input` (all axes when empty), as a scalar of
    its dtype; the divisor of a mean over dimensions known only at run time. Folds to a
    constant when those dimensions are static. Its value does not depend on `input`'s values.

    ```mlir
    %1 = nn.axis_size %0 {axes = array<i64: 0>} : tensor<?x10xf32> -> tensor<f32>
    ```
    """

    name = "nn.axis_size"
    traits = traits_def(Pure(), Elementwise(in_place=False, shape_operands=(0,)), ShapeOnly())
    axes = prop_def(DenseArrayBase[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        require_float(cls.name, x)
        for axis in get_ints(props, "axes"):
            axis_of(cls.name, x, axis)
        return tensor(x.element_type, [])


@irdl_op_definition
class IotaOp(ShapeOp):
    """The index along `axis` of every element of `input`, as an `i64` tensor of `input`'s
    shape: `arange(n)` along `axis` (n its size), the same across the other axes. The index
    masks are built from (a causal attention's `tril`). Reads only `input`'s shape.

    ```mlir
    %1 = nn.iota %0 {axis = 2 : i64} : tensor<?x8x8xf32> -> tensor<?x8x8xi64>
    ```
    """

    name = "nn.iota"
    traits = traits_def(Pure(), Elementwise(in_place=False), ShapeOnly())
    axis = prop_def(IntegerAttr[I64])

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (x,) = operand_types
        axis_of(cls.name, x, get_int(props, "axis"))
        return tensor(i64, x.get_shape())


# --- randomness and mode -----------------------------------------------------------------------


@irdl_op_definition
class RandomUniformOp(NNOp):
    """Uniform samples in [0, 1) with the shape of `input`. The stream is seeded by `seed` and
    the runtime's step counter, so dropout masks differ from step to step yet replay exactly.
    Not `Pure` but an allocation: CSE never merges two draws, DCE drops an unused one.

    ```mlir
    %1 = nn.random_uniform %0 {seed = 7 : i64} : tensor<?x128xf32> -> tensor<?x128xf32>
    ```
    """

    name = "nn.random_uniform"
    input = operand_def(TensorType)
    res = result_def(TensorType)
    seed = prop_def(IntegerAttr[I64])
    traits = traits_def(MemoryAllocEffect(), HostOnly(), ShapeOnly())
    assembly_format = "$input attr-dict `:` type($input) `->` type($res)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        (like,) = operand_types
        require_float(cls.name, like)
        return like


@irdl_op_definition
class TrainingOp(NNOp):
    """`true` inside a training step, `false` in inference; dropout and batch norm branch on it.

    ```mlir
    %0 = nn.training : tensor<i1>
    ```
    """

    name = "nn.training"
    res = result_def(TensorType)
    traits = traits_def(Pure(), HostOnly(), ShapeOnly())
    assembly_format = "attr-dict `:` type($res)"

    @classmethod
    def infer(cls, operand_types, props, result_type):
        return tensor(i1, [])


# --- loops -------------------------------------------------------------------------------------


@irdl_op_definition
class YieldOp(IRDLOperation):
    """The end of an `nn.scan` step: the next carries, then this step's outputs.

    ```mlir
    nn.yield %next, %next : tensor<?x8xf32>, tensor<?x8xf32>
    ```
    """

    name = "nn.yield"
    values = var_operand_def(TensorType)
    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(ScanOp)))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, values: Sequence[SSAValue]):
        super().__init__(operands=[values])


@irdl_op_definition
class ScanOp(IRDLOperation, HasCanonicalizationPatternsInterface):
    """A loop over the leading axis of the `over` sequences (its extent `T`, known at run time
    or not), carrying values from one step to the next: JAX's `lax.scan`, kept as one op.

    The region is one step, isolated from above. Its block takes the carries, one slice
    `xs[t]` of each sequence, then the `with` values (what every step reads: weights); its
    `nn.yield` gives the next carries, then the step's outputs. The results are the final
    carries, then each output stacked over `t` (`[T, ...]`). With `reverse` the steps run
    from `t = T - 1` down to 0; outputs stay indexed by `t`. With `saving n` the last `n`
    outputs are values of each step kept for a derivative (the carries it started from, and
    what it computed from them): the forward sweep of autodiff adds them, and the backward
    loop reads them instead of recomputing its step.

    ```mlir
    %h, %hs = nn.scan carry(%h0) over(%xs) with(%w) : (tensor<?x8xf32>, tensor<16x?x4xf32>,
        tensor<12x8xf32>) -> (tensor<?x8xf32>, tensor<16x?x8xf32>) {
    ^bb0(%c: tensor<?x8xf32>, %x: tensor<?x4xf32>, %v: tensor<12x8xf32>):
      ...
      nn.yield %next, %next : tensor<?x8xf32>, tensor<?x8xf32>
    }
    ```
    """

    name = "nn.scan"
    inits = var_operand_def(TensorType)
    xs = var_operand_def(TensorType)
    consts = var_operand_def(TensorType)
    finals = var_result_def(TensorType)
    ys = var_result_def(TensorType)
    reverse = opt_prop_def(UnitAttr)
    saved = opt_prop_def(IntegerAttr[I64])
    body = region_def("single_block")
    traits = traits_def(Pure(), IsolatedFromAbove())
    irdl_options = (
        AttrSizedOperandSegments(as_property=True),
        AttrSizedResultSegments(as_property=True),
    )

    def __init__(
        self,
        inits: Sequence[SSAValue],
        xs: Sequence[SSAValue],
        consts: Sequence[SSAValue],
        body: Region,
        reverse: bool = False,
        saved: int = 0,
    ):
        outputs = body.block.last_op
        assert isinstance(outputs, YieldOp)
        extent = sequence_extent([x.type for x in xs])
        out_types = [v.type for v in outputs.values][len(inits) :]
        properties: dict[str, Attribute] = {"reverse": UnitAttr()} if reverse else {}
        if saved:
            properties["saved"] = int_attr(saved)
        super().__init__(
            operands=[inits, xs, consts],
            result_types=[
                [v.type for v in inits],
                [stacked(t, extent) for t in out_types],
            ],
            properties=properties,
            regions=[body],
        )

    @classmethod
    def get_canonicalization_patterns(cls) -> tuple[RewritePattern, ...]:
        return tuple(CANONICALIZATIONS.get(cls, ()))

    @property
    def step(self) -> Block:
        return self.body.block

    @property
    def yielded(self) -> YieldOp:
        last = self.step.last_op
        assert isinstance(last, YieldOp)
        return last

    @property
    def is_reverse(self) -> bool:
        return self.reverse is not None

    @property
    def saved_count(self) -> int:
        return 0 if self.saved is None else self.saved.value.data

    def stacked_values(self) -> dict[SSAValue, int]:
        """Each value of the step that the loop stacks into an output (its own or one saved
        for a derivative), and the index in `ys` of that output: what a backward loop can
        read instead of computing it again."""
        outputs = list(self.yielded.values)[len(self.inits) :]
        return {v: j for j, v in reversed(list(enumerate(outputs)))}

    def verify_(self) -> None:
        try:
            extent = sequence_extent([x.type for x in self.xs])
        except ShapeError as e:
            raise VerifyException(str(e)) from None
        slices = [step_of(x.type) for x in self.xs]
        expected_args = [*(v.type for v in self.inits), *slices, *(v.type for v in self.consts)]
        if [a.type for a in self.step.args] != expected_args:
            raise VerifyException(
                "nn.scan: the step's arguments must be the carries, a slice of each sequence "
                "and the `with` values, in that order"
            )
        yielded = [v.type for v in self.yielded.values]
        carries = [v.type for v in self.inits]
        if yielded[: len(carries)] != carries or [r.type for r in self.finals] != carries:
            raise VerifyException(
                "nn.scan: each carry must keep its type: the step yields "
                f"{', '.join(format_type(t) for t in yielded[: len(carries)])} for carries "
                f"{', '.join(format_type(t) for t in carries)}"
            )
        outputs = [stacked(t, extent) for t in yielded[len(carries) :]]
        if [r.type for r in self.ys] != outputs:
            raise VerifyException("nn.scan: each output must be a step's output stacked over T")
        if not 0 <= self.saved_count <= len(outputs):
            raise VerifyException(f"nn.scan: it saves {self.saved_count} of {len(outputs)} outputs")

    def shape_giver(self, output: SSAValue) -> tuple[SSAValue, bool] | None:
        """For a loop of no steps, which gives no step of `output` to look at: an operand whose
        run-time shape is one step's of `output`, a carry of that type, or a sequence of the
        output's type (then True: without its leading axis); None if there is none."""
        step = step_of(output.type)
        for value in self.inits:
            if value.type == step:
                return value, False
        for value in self.xs:
            if value.type == output.type:
                return value, True
        return None

    def print(self, printer: Printer) -> None:
        if self.is_reverse:
            printer.print_string(" reverse")
        if self.saved_count:
            printer.print_string(f" saving {self.saved_count}")
        for keyword, values in (("carry", self.inits), ("over", self.xs), ("with", self.consts)):
            printer.print_string(f" {keyword}(")
            printer.print_list(values, printer.print_operand)
            printer.print_string(")")
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_function_type([v.type for v in self.operands], [r.type for r in self.results])
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=True)

    @classmethod
    def parse(cls, parser: Parser) -> ScanOp:
        reverse = parser.parse_optional_keyword("reverse") is not None
        saved = parser.parse_integer() if parser.parse_optional_keyword("saving") else 0
        groups = []
        for keyword in ("carry", "over", "with"):
            parser.parse_keyword(keyword)
            groups.append(
                parser.parse_comma_separated_list(
                    parser.Delimiter.PAREN, parser.parse_unresolved_operand
                )
            )
        attributes = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        pos = parser.pos
        function_type = parser.parse_function_type()
        types = list(function_type.inputs.data)
        operands = parser.resolve_operands([u for g in groups for u in g], types, pos)
        k, m = len(groups[0]), len(groups[1])
        body = parser.parse_region()
        op = cls(operands[:k], operands[k : k + m], operands[k + m :], body, reverse, saved)
        op.attributes.update(attributes)
        return op


def sequence_extent(xs: Sequence[TensorType]) -> int:
    """The number of steps of a scan over sequences `xs` (their common leading size)."""
    if not xs:
        raise ShapeError("nn.scan needs at least one sequence to run over")
    extent = DYN
    for x in xs:
        if x.get_num_dims() == 0:
            raise ShapeError(f"nn.scan runs over a leading axis; {format_type(x)} has none")
        size = x.get_shape()[0]
        if not dims_compatible(extent, size):
            raise ShapeError(f"nn.scan: the sequences have different lengths ({extent} and {size})")
        extent = size if size != DYN else extent
    return extent


def step_of(sequence: Attribute) -> TensorType:
    """The type of one step of a sequence `[T, ...]`: without its leading axis."""
    assert isinstance(sequence, TensorType)
    return TensorType(sequence.element_type, sequence.get_shape()[1:])


def stacked(t: Attribute, extent: int) -> TensorType:
    assert isinstance(t, TensorType)
    return TensorType(t.element_type, [extent, *t.get_shape()])


NN = Dialect(
    "nn",
    [
        NegOp,
        AbsOp,
        ExpOp,
        LogOp,
        SqrtOp,
        TanhOp,
        SigmoidOp,
        ReluOp,
        GeluOp,
        ErfOp,
        AddOp,
        SubOp,
        MulOp,
        DivOp,
        PowOp,
        MaximumOp,
        MinimumOp,
        FloorDivOp,
        ModOp,
        CmpOp,
        SelectOp,
        CastOp,
        ConstantOp,
        MatmulOp,
        TransposeOp,
        ReshapeOp,
        BroadcastToOp,
        ReduceSumOp,
        ReduceMeanOp,
        ReduceMaxOp,
        ArgmaxOp,
        SoftmaxOp,
        LogSoftmaxOp,
        Conv2dOp,
        MaxPool2dOp,
        AvgPool2dOp,
        GatherOp,
        OneHotOp,
        ConcatOp,
        SliceOp,
        RandomUniformOp,
        TrainingOp,
        Conv2dGradInputOp,
        Conv2dGradWeightOp,
        MaxPool2dGradOp,
        AvgPool2dGradOp,
        ScatterAddOp,
        SliceGradOp,
        AxisSizeOp,
        IotaOp,
        ScanOp,
        YieldOp,
    ],
    [],
)
