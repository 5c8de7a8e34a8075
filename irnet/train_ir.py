"""The IR of a `train` block: every function training runs, for a model `m`.

- `@m.loss(inputs, targets, params, state) -> (loss, state')`: the block's `loss` entry, and the
  next values of the model's state tensors (none for most models).
- `@m.eval(inputs, targets, params, state) -> (loss, output, state')`: the loss and the model's
  output, for validation metrics.
- `@m.grad(inputs, targets, params, state) -> (loss, state', grads...)`: an
  `ad.value_and_grad` request that the `autodiff` pass expands; the state is auxiliary.
- `@m.update(params, grads, opt, t, lr) -> (params', opt', t')`: the optimiser in `nn` ops.
- `@m.step(inputs, targets, params, state, opt, t, lr) -> (loss, params', state', opt', t')`:
  `@m.grad` then `@m.update`, as calls that `inline-functions` flattens into one function. For
  data-parallel training (`distributed`) the step takes this process's `share` of the global
  batch too, and a `dist.allreduce` between the two halves sums the weighted loss, state and
  gradients across processes (so the state is the share-weighted mean of the processes').

Results that update something carry its role and name as a result attribute (`nn.param`,
`nn.state`, `nn.opt`, `nn.grad`): the runtime stores each by name.

Arguments carry their role: `nn.input`, `nn.target`, `nn.param` (with `nn.init`), `nn.grad`,
`nn.state` (model state such as batch norm's running statistics), `nn.opt` (optimiser state such
as `m.dense_0.w`, and the step count `t`) and `nn.hyper` (`lr`).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr, f32, f64
from xdsl.ir import Attribute, SSAValue
from xdsl.rewriter import InsertPoint

from irnet.dialects import nn
from irnet.dialects.ad import ValueAndGradOp
from irnet.dialects.dist import AllReduceOp
from irnet.dialects.nn_builder import Emitter
from irnet.dialects.shapes import format_type

from . import ast
from . import metrics as metric_rules
from .diagnostics import IrnError
from .function_builder import FunctionBuilder, location
from .imports import FunctionRef
from .irgen import IRGen, evaluate, signature_type
from .optimizers import OPTIMIZERS, apply_updates
from .params import result_roles
from .train_config import TrainConfig, from_block, with_overrides


def generate(
    gen: IRGen, overrides: dict | None = None, distributed: bool = False
) -> dict[str, TrainConfig]:
    """Add each train block's functions to `gen`'s module; its settings by model name."""
    configs = {}
    for train in gen.main.tree.trains:
        if train.model in configs:
            raise IrnError(f"a second train block for '{train.model}'", train.loc)
        config = with_overrides(from_block(train), overrides or {})
        TrainBlock(gen, train, config, distributed).build()
        configs[train.model] = config
    return configs


class TrainBlock:
    def __init__(self, gen: IRGen, train: ast.Train, config: TrainConfig, distributed: bool):
        self.gen, self.train, self.config = gen, train, config
        self.distributed = distributed
        self.ref = gen.model_ref(train.model, train.loc)
        self.model = gen.model_spec(self.ref)
        self.name = self.model.symbol

    def build(self) -> None:
        loss_fn, loss_fb = self.loss(with_output=False)
        eval_fn, _ = self.loss(with_output=True)
        for spec in self.config.metrics:
            if spec.name not in metric_rules.METRICS and spec.name != "loss":
                self.custom_metric(spec, eval_fn)
        grad_fn = self.gradient(loss_fn, loss_fb)
        update_fn = self.update(loss_fn)
        self.step(loss_fn, grad_fn, update_fn)

    def arguments(self, fb: FunctionBuilder) -> None:
        """The model's inputs, then the block's targets."""
        for arg in self.ref.fn.args:
            type_ = signature_type(fb, arg.type)  # type: ignore[arg-type]
            attrs = {"nn.input": StringAttr(arg.name)}
            fb.env[arg.name] = fb.add_argument(arg.name, type_, arg.loc, attrs)
        for target in self.train.targets:
            if target.name in fb.env:
                raise IrnError(
                    f"train target '{target.name}' has the name of an input of {self.train.model}",
                    target.loc,
                )
            if not isinstance(target.type, ast.TensorTypeExpr):
                raise IrnError(f"train target '{target.name}' must be a tensor", target.loc)
            type_ = signature_type(fb, target.type)
            attrs = {"nn.target": StringAttr(target.name)}
            fb.env[target.name] = fb.add_argument(target.name, type_, target.loc, attrs)

    def loss(self, with_output: bool) -> tuple[func.FuncOp, FunctionBuilder]:
        fb = FunctionBuilder(
            self.gen, self.gen.main, shares_params_of=self.name, instance_prefix="loss."
        )
        self.arguments(fb)
        expr = self.config.loss
        loss = fb.tensor(evaluate(fb, expr), expr.loc)
        if loss.type.get_num_dims() != 0 or loss.type.element_type not in (f32, f64):
            raise IrnError(
                f"the loss must be a float scalar, but this is {format_type(loss.type)} "
                "(reduce it with mean or sum)",
                expr.loc,
            )
        results = [loss]
        if with_output:
            if not fb.model_outputs:
                raise IrnError(f"the loss does not call the model {self.train.model}", expr.loc)
            results.append(fb.model_outputs[0])
        suffix = ".eval" if with_output else ".loss"
        symbol = self.gen.unique_symbol(self.name + suffix)
        return self.gen.finish(fb, symbol, results, self.train.loc, expr.loc, False), fb

    def custom_metric(self, spec, eval_fn: func.FuncOp) -> None:
        """`@m.metric.NAME(output, target) -> scalar`: the file's `def NAME` called on the model's
        output and a target (the one its `target=` names, else the first), for `metrics`."""
        loc = spec.loc or self.train.loc
        ref = self.gen.main.namespace.get(spec.name)
        if not isinstance(ref, FunctionRef) or ref.fn.kind != "def":
            known = ", ".join(["loss", *metric_rules.METRICS])
            raise IrnError(
                f"unknown metric '{spec.name}' (known: {known}; or a def of this file taking "
                "the output and a target)",
                loc,
            )
        targets = list(self.train.targets)
        if not targets:
            message = f"metric {spec.name} compares the output with a target, and there is none"
            raise IrnError(message, loc)
        wanted = spec.kwargs.get("target", targets[0].name)
        target = next((t for t in targets if t.name == wanted), None)
        if target is None:
            raise IrnError(f"metric {spec.name}: the train block has no target {wanted!r}", loc)
        fb = FunctionBuilder(self.gen, self.gen.main)
        output_type = eval_fn.function_type.outputs.data[1]
        fb.env["output"] = fb.add_argument("output", output_type, loc, {})
        fb.env["target"] = fb.add_argument(
            "target", signature_type(fb, target.type), target.loc, {}
        )
        operands: list[ast.Expr] = [ast.Name(loc, "output"), ast.Name(loc, "target")]
        call = ast.Call(loc, ast.Name(loc, spec.name), operands, [])
        value = fb.tensor(evaluate(fb, call), loc)
        if value.type.get_num_dims() != 0 or value.type.element_type not in (f32, f64):
            raise IrnError(
                f"metric {spec.name} must return a float scalar, but returns "
                f"{format_type(value.type)}",
                loc,
            )
        symbol = self.gen.unique_symbol(f"{self.name}.metric.{spec.name}")
        self.gen.finish(fb, symbol, [value], loc, loc, False)

    def copy_arguments(
        self, fb: FunctionBuilder, source: func.FuncOp, keep: Sequence[int] | None = None
    ) -> list[SSAValue]:
        attrs = [dict(a.data) for a in source.arg_attrs.data] if source.arg_attrs else []
        indices = range(len(source.args)) if keep is None else keep
        copies = []
        for i in indices:
            arg = source.args[i]
            copy = fb.add_argument(arg.name_hint or f"arg{i}", arg.type, self.train.loc, attrs[i])
            copy.location = arg.location
            copies.append(copy)
        return copies

    def gradient(self, loss_fn: func.FuncOp, loss_fb: FunctionBuilder) -> func.FuncOp:
        fb = FunctionBuilder(self.gen, self.gen.main)
        args = self.copy_arguments(fb, loss_fn)
        wrt = [i for i, attrs in enumerate(loss_fb.arg_attrs) if "nn.param" in attrs]
        if not wrt:
            raise IrnError(f"{self.train.model} has no parameters to train", self.train.loc)
        request = ValueAndGradOp.request(loss_fn, args, wrt)
        request.location = location(self.train.loc)
        fb.block.add_op(request)
        symbol = self.gen.unique_symbol(self.name + ".grad")
        roles = [None, *result_roles(loss_fn)[1:], *(("grad", args[i].name_hint) for i in wrt)]
        return self.gen.finish(
            fb, symbol, list(request.results), self.train.loc, self.train.loc, False, roles
        )

    def param_indices(self, function: func.FuncOp) -> list[int]:
        return [i for i, a in enumerate(function.arg_attrs.data) if "nn.param" in a.data]

    def update(self, loss_fn: func.FuncOp) -> func.FuncOp:
        optimizer = OPTIMIZERS[self.config.optimizer.name]
        hp = self.config.hyperparameters
        fb = FunctionBuilder(self.gen, self.gen.main)
        params = self.copy_arguments(fb, loss_fn, self.param_indices(loss_fn))
        names = [p.name_hint for p in params]
        loc = self.config.optimizer.loc or self.train.loc
        grads = [
            self.extra(fb, f"grad.{n}", p.type, {"nn.grad": n}, loc) for n, p in zip(names, params)
        ]
        slots = [
            {
                s: self.extra(fb, f"{s}.{n}", p.type, {"nn.opt": f"{s}.{n}"}, loc)
                for s in optimizer.slots
            }
            for n, p in zip(names, params)
        ]
        scalar = nn.tensor(params[0].type.element_type, [])
        t = self.extra(fb, "t", scalar, {"nn.opt": "t"}, loc)
        lr = self.extra(fb, "lr", scalar, {"nn.hyper": "lr"}, loc)
        e = Emitter(InsertPoint.at_end(fb.block), location(loc))
        t_next = e.add(t, 1.0)
        new_params, new_slots = apply_updates(e, optimizer, hp, params, grads, slots, lr, t_next)
        results = [*new_params, *(s[k] for s in new_slots for k in optimizer.slots), t_next]
        roles = [
            *(("param", n) for n in names),
            *(("opt", f"{k}.{n}") for n in names for k in optimizer.slots),
            ("opt", "t"),
        ]
        symbol = self.gen.unique_symbol(self.name + ".update")
        return self.gen.finish(fb, symbol, results, loc, loc, False, roles)

    @staticmethod
    def extra(
        fb: FunctionBuilder, name: str, type_, attrs: dict[str, str], loc: ast.Loc
    ) -> SSAValue:
        wrapped: dict[str, Attribute] = {k: StringAttr(v) for k, v in attrs.items()}
        return fb.add_argument(name, type_, loc, wrapped)

    def step(self, loss_fn: func.FuncOp, grad_fn: func.FuncOp, update_fn: func.FuncOp) -> None:
        fb = FunctionBuilder(self.gen, self.gen.main)
        data_and_params = self.copy_arguments(fb, loss_fn)
        n_params = len(self.param_indices(loss_fn))
        opt = self.copy_arguments(fb, update_fn, range(2 * n_params, len(update_fn.args)))
        params = [data_and_params[i] for i in self.param_indices(loss_fn)]
        here = location(self.train.loc)
        grad_call = func.CallOp(
            grad_fn.sym_name.data, data_and_params, grad_fn.function_type.outputs.data
        )
        grad_call.location = here
        fb.block.add_op(grad_call)
        reduced = list(grad_call.results)
        if self.distributed:
            share = self.extra(fb, "share", reduced[0].type, {"nn.hyper": "share"}, self.train.loc)
            types = [v.type for v in reduced]
            reduce = AllReduceOp(operands=[reduced, share], result_types=[types])
            reduce.location = here
            fb.block.add_op(reduce)
            reduced = list(reduce.results)
        n_states = len(reduced) - 1 - n_params
        loss, states, grads = reduced[0], reduced[1 : 1 + n_states], reduced[1 + n_states :]
        update_call = func.CallOp(
            update_fn.sym_name.data, [*params, *grads, *opt], update_fn.function_type.outputs.data
        )
        update_call.location = here
        fb.block.add_op(update_call)
        updates = list(update_call.results)
        results = [loss, *updates[:n_params], *states, *updates[n_params:]]
        update_roles = result_roles(update_fn)
        roles = [
            None,
            *update_roles[:n_params],
            *result_roles(grad_fn)[1 : 1 + n_states],
            *update_roles[n_params:],
        ]
        symbol = self.gen.unique_symbol(self.name + ".step")
        self.gen.finish(fb, symbol, results, self.train.loc, self.train.loc, False, roles)
