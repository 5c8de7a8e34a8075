"""`fuse-elementwise`: group chains of elementwise ops, with the reduction that ends them, into
`kernel.fused` ops, so that each group becomes one loop nest in the compiled code.

Per function, in program order, every op is given to a group:

- an elementwise op (one with the `Elementwise` trait: `nn.add`, `nn.relu`, `nn.cmp`,
  `nn.broadcast_to`, `nn.one_hot`, `nn.axis_size`, ...) joins the open group of one of its
  operands' producers when its result has that group's iteration domain (the same type shape),
  and otherwise the most recent open group with that domain, or starts a group;
- a reduction (the `Reduction` trait: `nn.reduce_sum/mean/max`) joins the open group that
  produces its operand, over that group's domain, and closes it: nothing joins after it;
- an `nn.matmul` starts a `matmul` group: a transposed operand (`nn.transpose` of the last two
  axes) is copied in, to become a BLAS flag, and elementwise ops over the product's shape
  join it as an epilogue (bias, activation);
- scalar and splat constants are copied into every group that reads them;
- anything else (convolutions, pooling, softmax, gathers, layout ops, random draws) stays as it
  is: one kernel per op.

An op joins a group only if it does not depend on the group through an op outside it, so the
fused graph has no cycle; the function's ops are then put in a topological order that keeps
the original order where it can. A group of one op stays that op. Every op keeps its location
inside the region; the `kernel.fused` op has the location of the group's last op.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.traits import IsTerminator
from xdsl.transforms.dead_code_elimination import region_dce

from irnet.dialects import nn
from irnet.dialects.kernel import FusedOp, YieldOp
from irnet.dialects.traits import Elementwise, Reduction


def shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())


def is_inlined_constant(op: Operation | None) -> bool:
    """A constant that a kernel writes as a literal: a scalar or a splat."""
    return isinstance(op, nn.ConstantOp) and op.splat_value() is not None


def is_matmul_transpose(op: Operation | None) -> bool:
    """`nn.transpose` swapping the last two axes: a BLAS flag when it feeds a matmul."""
    if not isinstance(op, nn.TransposeOp):
        return False
    perm = nn.get_ints(op.properties, "perm")
    n = len(perm)
    return n >= 2 and list(perm) == [*range(n - 2), n - 1, n - 2]


@dataclass(eq=False)
class Group:
    kind: str
    domain: tuple[int, ...]
    ops: list[Operation] = field(default_factory=list)
    closed: bool = False
    first: int = 0
    """Position of the earliest op, to prune the dependency search."""

    def members(self) -> set[Operation]:
        return set(self.ops)


class Fuser:
    def __init__(self, block: Block):
        self.block = block
        self.ops = [op for op in block.ops if not op.has_trait(IsTerminator)]
        self.position = {op: i for i, op in enumerate(self.ops)}
        self.group_of: dict[Operation, Group] = {}
        self.groups: list[Group] = []

    # --- the condensed graph ---

    def node(self, op: Operation) -> Group | Operation:
        return self.group_of.get(op, op)

    def node_ops(self, node: Group | Operation) -> list[Operation]:
        return node.ops if isinstance(node, Group) else [node]

    def producers(self, node: Group | Operation) -> set[Group | Operation]:
        inside = set(self.node_ops(node))
        found: set[Group | Operation] = set()
        for op in self.node_ops(node):
            for operand in op.operands:
                owner = operand.owner
                if isinstance(owner, Operation) and owner in self.position and owner not in inside:
                    found.add(self.node(owner))
        return found

    def depends_on(self, operands: list[SSAValue], group: Group, skip: set[Operation]) -> bool:
        """Whether a value of `operands` depends on `group` through an op outside it."""
        stack: list[Group | Operation] = []
        for value in operands:
            owner = value.owner
            if isinstance(owner, Operation) and owner in self.position and owner not in skip:
                stack.append(self.node(owner))
        seen: set[int] = set()
        while stack:
            node = stack.pop()
            if node is group:
                return True
            if id(node) in seen:
                continue
            seen.add(id(node))
            if max(self.position[o] for o in self.node_ops(node)) < group.first:
                continue
            stack.extend(self.producers(node))
        return False

    def can_join(self, op: Operation, group: Group, skip_constants: bool = True) -> bool:
        members = group.members()
        external = [
            v
            for v in op.operands
            if v.owner not in members and not (skip_constants and is_inlined_constant(v.owner))
        ]
        return not self.depends_on(external, group, members)

    def add(self, op: Operation, group: Group) -> None:
        group.ops.append(op)
        group.first = min(group.first, self.position[op])
        self.group_of[op] = group

    def start(self, op: Operation, kind: str, domain: tuple[int, ...]) -> Group:
        group = Group(kind, domain, first=self.position[op])
        self.groups.append(group)
        self.add(op, group)
        return group

    # --- grouping ---

    def open_groups_of(self, op: Operation, domain: tuple[int, ...]) -> list[Group]:
        """Open groups with `domain` that produce an operand of `op`, latest first."""
        found: list[Group] = []
        for operand in op.operands:
            owner = operand.owner
            group = self.group_of.get(owner) if isinstance(owner, Operation) else None
            if group and not group.closed and group.domain == domain and group not in found:
                found.append(group)
        return sorted(found, key=lambda g: -max(self.position[o] for o in g.ops))

    def assign(self, op: Operation) -> None:
        if op.has_trait(Elementwise):
            domain = shape(op.results[0])
            candidates = self.open_groups_of(op, domain)
            siblings = [
                g
                for g in reversed(self.groups[-8:])
                if not g.closed and g.domain == domain and g not in candidates
            ]
            for group in [*candidates, *siblings]:
                if self.can_join(op, group):
                    self.add(op, group)
                    return
            self.start(op, "elementwise", domain)
        elif op.has_trait(Reduction):
            (operand,) = op.operands
            owner = operand.owner
            group = self.group_of.get(owner) if isinstance(owner, Operation) else None
            if (
                group
                and not group.closed
                and group.domain == shape(operand)
                and self.can_join(op, group)
            ):
                self.add(op, group)
            else:
                group = self.start(op, "elementwise", shape(operand))
            group.closed = True
        elif isinstance(op, nn.MatmulOp):
            self.start(op, "matmul", shape(op.results[0]))

    def run(self) -> None:
        for op in self.ops:
            self.assign(op)
        fused = [g for g in self.groups if len(self.real_ops(g)) >= 2]
        for op, group in list(self.group_of.items()):
            if group not in fused:
                del self.group_of[op]
        order = self.schedule()
        ret = self.block.last_op
        assert ret is not None and ret.has_trait(IsTerminator)
        new_ops: list[Operation] = []
        for node in order:
            if isinstance(node, Group):
                built = self.build(node)
                if built is not None:
                    new_ops.append(built)
            else:
                new_ops.append(node)
        for op in self.ops:
            if op.parent is not None:
                op.detach()
        for op in new_ops:
            self.block.insert_op_before(op, ret)
        for group in fused:
            for op in reversed(group.ops):
                op.erase(safe_erase=False)

    @staticmethod
    def real_ops(group: Group) -> list[Operation]:
        return [op for op in group.ops if not isinstance(op, nn.ConstantOp)]

    def schedule(self) -> list[Group | Operation]:
        """The condensed nodes in a topological order, by original position where free."""
        nodes: list[Group | Operation] = []
        seen: set[int] = set()
        for op in self.ops:
            node = self.node(op)
            if id(node) not in seen:
                seen.add(id(node))
                nodes.append(node)
        index = {id(n): i for i, n in enumerate(nodes)}
        users: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
        waiting = [0] * len(nodes)
        for i, node in enumerate(nodes):
            for producer in self.producers(node):
                users[index[id(producer)]].append(i)
                waiting[i] += 1
        ready = [i for i in range(len(nodes)) if waiting[i] == 0]
        heapq.heapify(ready)
        order: list[Group | Operation] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(nodes[i])
            for j in users[i]:
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
        assert len(order) == len(nodes), "fusion made a cycle"
        return order

    def build(self, group: Group) -> FusedOp | None:
        members = group.members()
        inputs: list[SSAValue] = []
        constants: list[Operation] = []
        transposes: list[Operation] = []
        for op in group.ops:
            for value in op.operands:
                owner = value.owner
                if owner in members:
                    continue
                if is_inlined_constant(owner):
                    if owner not in constants:
                        constants.append(owner)
                elif (
                    group.kind == "matmul"
                    and isinstance(op, nn.MatmulOp)
                    and is_matmul_transpose(owner)
                    and all(u.operation is op or u.operation not in members for u in value.uses)
                ):
                    if owner not in transposes:
                        transposes.append(owner)
                        if owner.operands[0] not in inputs:
                            inputs.append(owner.operands[0])
                elif value not in inputs:
                    inputs.append(value)
        outputs = [
            r
            for op in group.ops
            for r in op.results
            if any(use.operation not in members for use in r.uses)
        ]
        if not outputs:
            return None
        block = Block(arg_types=[v.type for v in inputs])
        mapping: dict[SSAValue, SSAValue] = dict(zip(inputs, block.args))
        for op in [*constants, *transposes, *group.ops]:
            block.add_op(op.clone(mapping))
        block.add_op(YieldOp([mapping[r] for r in outputs]))
        fused = FusedOp(group.kind, inputs, [r.type for r in outputs], Region(block))
        fused.location = group.ops[-1].location
        for old, new in zip(outputs, fused.outs):
            new.name_hint = old.name_hint
            old.replace_uses_with_if(new, lambda use: use.operation not in members)
        return fused


@dataclass(frozen=True)
class FuseElementwisePass(ModulePass):
    """Group elementwise chains (and the reduction ending them) into `kernel.fused` ops."""

    name = "fuse-elementwise"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for function in op.ops:
            if isinstance(function, func.FuncOp) and function.body.blocks:
                for block in straight_line_blocks(function):
                    Fuser(block).run()
                region_dce(function.body)


def straight_line_blocks(function: func.FuncOp) -> list[Block]:
    """The blocks that the lowering passes plan one by one: the function's body and the step
    of each loop in it (each becomes a function of its own in the emitted code)."""
    steps = [op.step for op in function.walk() if isinstance(op, nn.ScanOp)]
    return [function.body.block, *steps]
