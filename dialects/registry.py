"""One registry per concern (derivative rule, cpu lowering, cuda lowering, ...), keyed by op class
and filled by decorators next to each rule, as JAX keeps one rule table per primitive and
concern. A registry may inherit from a parent: the cuda target's lowerings fall back to the cpu
target's, so it registers only what differs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from xdsl.ir import Operation

Rule = TypeVar("Rule", bound=Callable)


class Registry(Generic[Rule]):
    def __init__(self, concern: str, parent: Registry[Rule] | None = None):
        self.concern = concern
        self.parent = parent
        self.rules: dict[type[Operation], Rule] = {}

    def register(self, *op_classes: type[Operation]) -> Callable[[Rule], Rule]:
        """Decorate the rule of `op_classes`; registering a class twice is a mistake."""

        def add(rule: Rule) -> Rule:
            for op_class in op_classes:
                if op_class in self.rules:
                    raise ValueError(f"{op_class.name} has two {self.concern} rules")
                self.rules[op_class] = rule
            return rule

        return add

    def get(self, op_class: type[Operation]) -> Rule | None:
        """The rule of `op_class`, this registry's own or else its parent's."""
        rule = self.rules.get(op_class)
        if rule is None and self.parent is not None:
            return self.parent.get(op_class)
        return rule

    def __contains__(self, op_class: type[Operation]) -> bool:
        return self.get(op_class) is not None
