"""The `kernel` dialect: fusion regions, the unit of code generation of the compiled targets.

The `fuse-elementwise` pass (`lowering/fusion.py`) groups `nn` ops into `kernel.fused` ops; each
becomes one loop nest (one `@njit` function) in the emitted module. The region holds ordinary
`nn` ops, with their own source locations, and is isolated from above: every value from outside
comes in as an operand (a block argument inside), and `kernel.yield` names the values the rest of
the function uses.

```mlir
%1, %h = kernel.fused "matmul" (%x, %dense_0.w, %dense_0.b)
    : (tensor<?x784xf32>, tensor<784x256xf32>, tensor<256xf32>)
    -> (tensor<?x256xf32>, tensor<?x256xf32>) {
^bb0(%0: tensor<?x784xf32>, %2: tensor<784x256xf32>, %3: tensor<256xf32>):
  %4 = nn.matmul %0, %2 : (tensor<?x784xf32>, tensor<784x256xf32>) -> tensor<?x256xf32>
  %5 = nn.add %4, %3 : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>
  %6 = nn.relu %5 : tensor<?x256xf32>
  kernel.yield %5, %6 : tensor<?x256xf32>, tensor<?x256xf32>
}
```

`kind` says which loop nest the emitter writes:

- `elementwise`: elementwise ops over one iteration domain (the shape of their results), ended
  optionally by one reduction (`nn.reduce_sum/mean/max`) over that domain;
- `matmul`: an `nn.matmul` (operands possibly transposed by `nn.transpose`, which becomes a BLAS
  flag) followed by an elementwise epilogue over its result.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import StringAttr, TensorType
from xdsl.ir import Attribute, Dialect, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    lazy_traits_def,
    prop_def,
    region_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, Pure
from xdsl.utils.exceptions import VerifyException

KINDS = ("elementwise", "matmul")


@irdl_op_definition
class YieldOp(IRDLOperation):
    """The values of a `kernel.fused` region that its results stand for."""

    name = "kernel.yield"
    values = var_operand_def(TensorType)
    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(FusedOp)))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, values: Sequence[SSAValue]):
        super().__init__(operands=[values])


@irdl_op_definition
class FusedOp(IRDLOperation):
    """One kernel: the `nn` ops of its region run as a single loop nest."""

    name = "kernel.fused"
    kind = prop_def(StringAttr)
    inputs = var_operand_def(TensorType)
    outs = var_result_def(TensorType)
    body = region_def("single_block")
    traits = traits_def(Pure(), IsolatedFromAbove())

    def __init__(
        self,
        kind: str,
        inputs: Sequence[SSAValue],
        result_types: Sequence[Attribute],
        body: Region,
    ):
        super().__init__(
            operands=[inputs],
            result_types=[result_types],
            properties={"kind": StringAttr(kind)},
            regions=[body],
        )

    def verify_(self) -> None:
        if self.kind.data not in KINDS:
            raise VerifyException(f"kernel.fused: unknown kind {self.kind.data!r}")
        block = self.body.block
        arg_types = [a.type for a in block.args]
        if arg_types != [v.type for v in self.inputs]:
            raise VerifyException("kernel.fused: block arguments must match the inputs' types")
        last = block.last_op
        if not isinstance(last, YieldOp):
            raise VerifyException("kernel.fused: the region must end with kernel.yield")
        if [v.type for v in last.values] != [r.type for r in self.outs]:
            raise VerifyException("kernel.fused: kernel.yield must match the results' types")

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.kind.data)
        printer.print_string(" ")
        printer.print_operands(self.inputs)
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_function_type([v.type for v in self.inputs], [r.type for r in self.outs])
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=True)

    @classmethod
    def parse(cls, parser: Parser) -> FusedOp:
        kind = parser.parse_str_literal("kernel kind")
        pos = parser.pos
        unresolved = parser.parse_comma_separated_list(
            parser.Delimiter.PAREN, parser.parse_unresolved_operand
        )
        attributes = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        function_type = parser.parse_function_type()
        inputs = parser.resolve_operands(unresolved, function_type.inputs.data, pos)
        body = parser.parse_region()
        op = cls(kind, inputs, function_type.outputs.data, body)
        op.attributes.update(attributes)
        return op

    @property
    def yielded(self) -> YieldOp:
        last = self.body.block.last_op
        assert isinstance(last, YieldOp)
        return last


KERNEL = Dialect("kernel", [FusedOp, YieldOp], [])
