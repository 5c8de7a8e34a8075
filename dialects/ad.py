"""The `ad` dialect: derivative requests, expanded into `nn` ops by the `autodiff` pass.

A request names a function symbol, the call's arguments and the positions (`wrt`) of the
arguments to differentiate with respect to, in the shape every MLIR AD project uses
(`enzyme.autodiff @f(...)`, `gradient.grad @f(...)`):

```mlir
%loss, %dw, %db = ad.value_and_grad @model.loss(%x, %y, %w, %b) wrt [2, 3]
    : (tensor<?x784xf32>, tensor<?xi32>, tensor<784x10xf32>, tensor<10xf32>)
    -> (tensor<f32>, tensor<784x10xf32>, tensor<10xf32>)
```

The function's first result is what is differentiated: a float scalar, or any float tensor when
a `seed` (the cotangent of the result) is given, which makes the request a vector-Jacobian
product. Further results are auxiliary (JAX's `has_aux`), such as the next values of the model's
state: `ad.value_and_grad` returns them after the value, undifferentiated; `ad.grad` drops them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    I64,
    DenseArrayBase,
    FunctionType,
    SymbolRefAttr,
    TensorType,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_op_definition,
    opt_operand_def,
    prop_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser, UnresolvedOperand
from xdsl.printer import Printer
from xdsl.traits import Pure, SymbolTable
from xdsl.utils.exceptions import VerifyException

from .nn import int_array
from .shapes import format_type, is_float, shapes_compatible


class GradRequestOp(IRDLOperation):
    """Base of the derivative requests; `WITH_VALUE` says whether the value comes first."""

    WITH_VALUE: ClassVar[bool]

    callee = prop_def(SymbolRefAttr)
    wrt = prop_def(DenseArrayBase[I64])
    args = var_operand_def(TensorType)
    seed = opt_operand_def(TensorType)
    outs = var_result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (AttrSizedOperandSegments(as_property=True),)

    @classmethod
    def request(
        cls,
        callee: func.FuncOp,
        args: Sequence[SSAValue],
        wrt: Sequence[int],
        seed: SSAValue | None = None,
    ) -> GradRequestOp:
        results = callee.function_type.outputs.data
        # The callee's types, not the arguments': the gradient is computed in the callee.
        grads = [callee.function_type.inputs.data[i] for i in wrt]
        return cls(
            operands=[list(args), [seed] if seed is not None else []],
            result_types=[[*(results if cls.WITH_VALUE else []), *grads]],
            properties={
                "callee": SymbolRefAttr(callee.sym_name),
                "wrt": int_array(wrt),
            },
        )

    @property
    def wrt_indices(self) -> tuple[int, ...]:
        return tuple(int(i) for i in self.wrt.get_values())

    @property
    def grads(self) -> Sequence[SSAValue]:
        return self.outs[len(self.outs) - len(self.wrt_indices) :]

    def verify_(self) -> None:
        callee = SymbolTable.lookup_symbol(self, self.callee)
        if not isinstance(callee, func.FuncOp):
            raise VerifyException(f"{self.name}: no function {self.callee} to differentiate")
        inputs = callee.function_type.inputs.data
        outputs = callee.function_type.outputs.data
        name = callee.sym_name.data
        if len(inputs) != len(self.args):
            raise VerifyException(
                f"{self.name}: @{name} takes {len(inputs)} arguments, {len(self.args)} given"
            )
        for i, (expected, arg) in enumerate(zip(inputs, self.args)):
            if not compatible(expected, arg.type):
                raise VerifyException(
                    f"{self.name}: argument {i} of @{name} is {format_type(expected)}, "
                    f"got {format_type(arg.type)}"
                )
        if not outputs or not isinstance(outputs[0], TensorType) or not is_float(outputs[0]):
            raise VerifyException(f"{self.name}: @{name} must return a float tensor first")
        result = outputs[0]
        if self.seed is None and result.get_num_dims() != 0:
            raise VerifyException(
                f"{self.name}: @{name} returns {format_type(result)}, not a scalar; "
                "give a seed (the result's cotangent) to differentiate it"
            )
        if self.seed is not None and not compatible(result, self.seed.type):
            raise VerifyException(
                f"{self.name}: the seed {format_type(self.seed.type)} does not match the "
                f"result {format_type(result)}"
            )
        wrt = self.wrt_indices
        if len(set(wrt)) != len(wrt) or not wrt:
            raise VerifyException(f"{self.name}: wrt {list(wrt)} must be distinct and non-empty")
        for i in wrt:
            if not 0 <= i < len(self.args):
                raise VerifyException(f"{self.name}: wrt index {i} is out of range")
            if not is_float(self.args[i].type):
                raise VerifyException(
                    f"{self.name}: argument {i} is {format_type(self.args[i].type)}; "
                    "only float arguments have gradients"
                )
        expected_results = [*(outputs if self.WITH_VALUE else []), *(inputs[i] for i in wrt)]
        actual = [r.type for r in self.outs]
        if len(actual) != len(expected_results) or not all(
            compatible(e, a) for e, a in zip(expected_results, actual)
        ):
            raise VerifyException(f"{self.name}: result types do not match @{name} and wrt")

    # `ad.grad @f(%a, %b) wrt [1] seed %s : (types) -> (types)`
    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.callee)
        printer.print_string("(")
        printer.print_list(self.args, printer.print_operand)
        printer.print_string(f") wrt [{', '.join(map(str, self.wrt_indices))}]")
        if self.seed is not None:
            printer.print_string(" seed ")
            printer.print_operand(self.seed)
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        operand_types = [o.type for o in self.operands]
        printer.print_attribute(FunctionType.from_lists(operand_types, self.result_types))

    @classmethod
    def parse(cls, parser: Parser) -> GradRequestOp:
        callee = parser.parse_attribute()
        delimiter = Parser.Delimiter.PAREN
        args: list[UnresolvedOperand] = parser.parse_comma_separated_list(
            delimiter, parser.parse_unresolved_operand
        )
        parser.parse_keyword("wrt")
        wrt = parser.parse_comma_separated_list(Parser.Delimiter.SQUARE, parser.parse_integer)
        seed = parser.parse_unresolved_operand() if parser.parse_optional_keyword("seed") else None
        attributes = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        function_type = parser.parse_function_type()
        operands = parser.resolve_operands(
            [*args, *([seed] if seed else [])], function_type.inputs.data, parser.pos
        )
        op = cls(
            operands=[operands[: len(args)], operands[len(args) :]],
            result_types=[function_type.outputs.data],
            properties={"callee": callee, "wrt": int_array(wrt)},
            attributes=attributes,
        )
        return op


def compatible(expected: Attribute, actual: Attribute) -> bool:
    if isinstance(expected, TensorType) and isinstance(actual, TensorType):
        return expected.element_type == actual.element_type and shapes_compatible(
            expected.get_shape(), actual.get_shape()
        )
    return expected == actual


@irdl_op_definition
class GradOp(GradRequestOp):
    """The gradients of `@callee` with respect to the `wrt` arguments.

    ```mlir
    %dw = ad.grad @loss(%x, %w) wrt [1] : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<4xf32>
    ```
    """

    name = "ad.grad"
    WITH_VALUE: ClassVar[bool] = False


@irdl_op_definition
class ValueAndGradOp(GradRequestOp):
    """`@callee`'s value, then its gradients with respect to the `wrt` arguments.

    ```mlir
    %l, %dw = ad.value_and_grad @loss(%x, %w) wrt [1]
        : (tensor<?x4xf32>, tensor<4xf32>) -> (tensor<f32>, tensor<4xf32>)
    ```
    """

    name = "ad.value_and_grad"
    WITH_VALUE: ClassVar[bool] = True


AD = Dialect("ad", [GradOp, ValueAndGradOp], [])
