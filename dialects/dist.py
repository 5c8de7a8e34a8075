"""The `dist` dialect: collectives of data-parallel training.

`dist.allreduce` is where the gradients of a distributed training step are reduced across
processes: each process weights its values by its share of the global batch, and every process
receives the sum. Weighting by the share makes the result the gradient of the mean loss over the
global batch, whatever the split; with one process the share is 1 and the op is the identity.
The runtime reduces all operands with one collective over a single flat buffer.
"""

from __future__ import annotations

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Dialect
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    var_operand_def,
    var_result_def,
)
from xdsl.utils.exceptions import VerifyException

from .shapes import format_type, is_float


@irdl_op_definition
class AllReduceOp(IRDLOperation):
    """`sum over processes of (share * input)` for every input, one collective for all.
    Not `Pure`: it communicates, so CSE never merges and DCE never drops it.

    ```mlir
    %l, %dw = dist.allreduce %loss, %gw share %s
        : (tensor<f32>, tensor<784x10xf32>, tensor<f32>) -> (tensor<f32>, tensor<784x10xf32>)
    ```
    """

    name = "dist.allreduce"
    inputs = var_operand_def(TensorType)
    share = operand_def(TensorType)
    outs = var_result_def(TensorType)
    assembly_format = "$inputs `share` $share attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        if [i.type for i in self.inputs] != [r.type for r in self.outs]:
            raise VerifyException("dist.allreduce: each result has the type of its input")
        if self.share.type.get_num_dims() != 0 or not is_float(self.share.type):
            raise VerifyException(
                f"dist.allreduce: the share is a float scalar, got {format_type(self.share.type)}"
            )
        for value in self.inputs:
            if not is_float(value.type):
                raise VerifyException(
                    f"dist.allreduce reduces float tensors, got {format_type(value.type)}"
                )


DIST = Dialect("dist", [AllReduceOp], [])
