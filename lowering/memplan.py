"""`plan-memory`: decide where every intermediate tensor of a function lives, so that compiled
code allocates its buffers once per shape and reuses them across calls and between values whose
lifetimes do not overlap.

The plan is an attribute on each top-level op that writes tensors, one entry per result:

- `"ws<k>"`: workspace slot `k` of the function. The runtime keeps one buffer per slot and
  shape for the whole process, so a training step allocates nothing after its first call. A slot
  is shared by values of the same type whose lifetimes (from the op that writes them to their
  last reader, views included) do not overlap;
- `"in<j>"`: in place, in the buffer of the op's operand `j`: an elementwise kernel (no
  reduction) whose operand has the result's type, is read at the same index as the result is
  written, is itself in a workspace slot, and is not read after this op (nor through a view);
- `"fresh"`: a new array at every call: the function's results (the caller keeps them), and
  anything they view.

A view (the `View` trait: `nn.reshape`) shares its operand's buffer (no entry); host-only ops
(constants, random draws, `nn.training`) are made by the host. Arguments are never written. Printed:

```mlir
%h, %0 = kernel.fused "matmul" (%x, %dense_0.w, %dense_0.b) {memplan.buffers = ["ws0", "ws1"]} ...
%3 = nn.sub %1, %2 {memplan.buffers = ["in0"]} : ...
```
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.traits import IsTerminator

from irnet.dialects.kernel import FusedOp
from irnet.dialects.traits import Elementwise, HostOnly, Reduction, View

from .fusion import straight_line_blocks


def in_place_capable(op: Operation) -> bool:
    """A kernel that reads each operand of the result's type at the index it writes."""
    if isinstance(op, FusedOp):
        return op.kind.data == "elementwise" and not any(
            inner.has_trait(Reduction) for inner in op.body.block.ops
        )
    trait = op.get_trait(Elementwise)
    return trait is not None and trait.in_place


class Planner:
    def __init__(self, block: Block):
        self.block = block
        self.ops = list(block.ops)
        self.position = {op: i for i, op in enumerate(self.ops)}
        self.root: dict[SSAValue, SSAValue] = {}
        self.last_use: dict[SSAValue, int] = {}
        self.kind: dict[SSAValue, str] = {}
        """Root value -> "arg", "host" or "kernel"."""

    def root_of(self, value: SSAValue) -> SSAValue:
        return self.root.get(value, value)

    def analyse(self) -> None:
        for arg in self.block.args:
            self.kind[arg] = "arg"
        end = len(self.ops)
        for i, op in enumerate(self.ops):
            for value in op.operands:
                root = self.root_of(value)
                use = end if op.has_trait(IsTerminator) else i
                self.last_use[root] = max(self.last_use.get(root, -1), use)
            if op.has_trait(View):
                self.root[op.results[0]] = self.root_of(op.operands[0])
            for r in op.results:
                if r not in self.root:
                    self.kind[r] = "host" if op.has_trait(HostOnly) else "kernel"
                    self.last_use.setdefault(r, i)

    def run(self) -> None:
        self.analyse()
        slot_of: dict[SSAValue, int] = {}
        slot_types: list[Attribute] = []
        busy: dict[int, SSAValue] = {}
        """Slot -> the root value holding it."""
        for i, op in enumerate(self.ops):
            if op.has_trait(IsTerminator) or op.has_trait(View) or op.has_trait(HostOnly):
                continue
            for slot, holder in list(busy.items()):
                if self.last_use[holder] < i:
                    del busy[slot]
            plan: list[str] = []
            taken_inputs: set[SSAValue] = set()
            for result in op.results:
                if self.last_use[result] >= len(self.ops):
                    plan.append("fresh")
                    continue
                j = self.in_place_operand(op, i, result, slot_of, taken_inputs)
                if j is not None:
                    operand = op.operands[j]
                    taken_inputs.add(operand)
                    slot = slot_of[operand]
                    slot_of[result] = slot
                    busy[slot] = result
                    plan.append(f"in{j}")
                    continue
                slot = next(
                    (k for k, t in enumerate(slot_types) if k not in busy and t == result.type),
                    None,
                )
                if slot is None:
                    slot = len(slot_types)
                    slot_types.append(result.type)
                slot_of[result] = slot
                busy[slot] = result
                plan.append(f"ws{slot}")
            op.attributes["memplan.buffers"] = ArrayAttr([StringAttr(p) for p in plan])

    def in_place_operand(
        self,
        op: Operation,
        i: int,
        result: SSAValue,
        slot_of: dict[SSAValue, int],
        taken: set[SSAValue],
    ) -> int | None:
        if not in_place_capable(op):
            return None
        roots = [self.root_of(v) for v in op.operands]
        for j, operand in enumerate(op.operands):
            if (
                operand in slot_of
                and operand not in taken
                and self.root_of(operand) is operand
                and operand.type == result.type
                and self.last_use[operand] == i
                and roots.count(operand) == 1
            ):
                return j
        return None


@dataclass(frozen=True)
class PlanMemoryPass(ModulePass):
    """Assign every intermediate tensor a reusable workspace slot, in place where safe."""

    name = "plan-memory"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for function in op.ops:
            if isinstance(function, func.FuncOp) and function.body.blocks:
                for block in straight_line_blocks(function):
                    Planner(block).run()
