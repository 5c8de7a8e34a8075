"""The `irnet` command line: check, dump and opt (more subcommands join as the backends land).

Every user mistake surfaces as an `IrnError`: one `file:line:col: error:` paragraph on stderr
and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from . import driver, stages, targets, threads
from .diagnostics import IrnError
from .summary import model_tables, parameters, signature
from .train_config import SETTINGS
from .version import __version__


def print_ir(module: ModuleOp, locations: bool = True, generic: bool = False) -> str:
    out = io.StringIO()
    Printer(out, print_debuginfo=locations, print_generic_format=generic).print_op(module)
    return out.getvalue().rstrip("\n") + "\n"


# --- subcommands -------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    compiled = driver.load(args.file)
    functions = [op for op in compiled.module.ops if isinstance(op, func.FuncOp)]
    public = [f for f in functions if f.sym_visibility is None]
    if not public:
        print(f"{args.file}: ok (no model or train block to instantiate)")
        return 0
    for function in public:
        kind = function_kind(function)
        print(f"{kind} {signature(function)}")
        if kind == "model" and parameters(function) + parameters(function, "state"):
            print("  " + model_tables(function).replace("\n", "\n  "))
        print()
    print(f"{args.file}: ok")
    return 0


TRAIN_FUNCTIONS = ("loss", "eval", "grad", "update", "step")


def function_kind(function: func.FuncOp) -> str:
    """`model`, or which function of a train block (`loss`, `grad`, `step`, ...) it is."""
    name = function.sym_name.data  # the frontend's suffixes; `.` is not in `.irn` names
    suffix = name.rsplit(".", 1)[-1].split("_")[0] if "." in name else ""
    return suffix if suffix in TRAIN_FUNCTIONS else "model"


def cmd_dump(args: argparse.Namespace) -> int:
    compiled = driver.load(args.file, distributed=args.distributed)
    plan = stages.Stages.of(args.target, args.pipeline)
    results = plan.run(compiled.module, args.file, last_stage(plan, args))

    def show(result: ModuleOp | str) -> None:
        if isinstance(result, ModuleOp):
            result = print_ir(result, not args.no_locations, args.generic)
        sys.stdout.write(result)

    if args.print_ir_after_all:
        for name, result in results:
            print(stages.header(name))
            show(result)
    else:
        *_, (_, result) = results
        show(result)
    return 0


def last_stage(plan: stages.Stages, args: argparse.Namespace) -> int:
    """The index of the stage `irnet dump` prints (the last it runs)."""
    if args.after:
        return plan.index(args.after, "--after")
    if args.before:
        return plan.index(args.before, "--before", first=1) - 1
    if args.pipeline is None and not args.print_ir_after_all:
        return plan.index(stages.DEFAULT_STAGE, "--after")
    return len(plan.names) - 1


def cmd_opt(args: argparse.Namespace) -> int:
    compiled = driver.load(args.file)
    driver.run_passes(compiled.module, args.passes, verify_each=True)
    text = print_ir(compiled.module, not args.no_locations, args.generic)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import format_rows, gradcheck

    rows = gradcheck(
        args.file, args.function, seed=args.seed, batch=args.batch, samples=args.samples
    )
    print(format_rows(rows))
    return 0 if all(r.passed for r in rows) else 1


def cmd_repl(args: argparse.Namespace) -> int:
    from .repl.terminal import run_repl

    return run_repl(args.file)


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_file

    run_file(args)
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    targets.compile_file(args)
    return 0


def overrides(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name, None) for name in SETTINGS}


def open_model(args: argparse.Namespace, world=None):
    """The `irnet.Model` of a command's file, flags and target."""
    from .model import Model

    return Model.open(args.file, model=args.model, target=args.target, float64=args.f64,
                      world=world, **overrides(args))  # fmt: skip


def cmd_train(args: argparse.Namespace) -> int:
    from .distributed import world
    from .train import TrainOptions, train

    if args.non_strict and not args.init_from:
        raise IrnError("--non-strict applies to --init-from CKPT")
    processes = world(args.distributed)
    options = TrainOptions(
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
        resume=args.resume,
        log=Path(args.log) if args.log else None,
        plot=Path(args.plot) if args.plot else None,
        detect_anomaly=args.detect_anomaly,
        stop_after=args.stop_after,
        init_from=Path(args.init_from) if args.init_from else None,
        strict=not args.non_strict,
    )
    try:
        model = open_model(args, processes)
        train(model.trainer, options)
    except Exception as e:
        if processes.size > 1:  # stop every rank, not only this one
            processes.abort(str(e))
        raise
    return 0


def trained_model(args: argparse.Namespace):
    """The model with its checkpoint's weights, and its trainer (made first: a file without a
    train block is refused before the checkpoint is read)."""
    model = open_model(args)
    trainer = model.trainer
    model.load(args.checkpoint)
    return model, trainer


def cmd_eval(args: argparse.Namespace) -> int:
    from .train import block_part, format_metrics

    model, trainer = trained_model(args)
    part = args.part
    if part is None:
        part, why = default_part(trainer)
        print(f"evaluating the {part} part (no --part given; {why})")
    dataset = block_part(trainer, part)
    metrics = model.evaluate(dataset)
    print(
        f"{dataset.source} ({part}, {len(dataset):,} examples): "
        + format_metrics(part, metrics, trainer.metrics)
    )
    return 0


def default_part(session) -> tuple[str, str]:
    """`eval`'s part without --part, and why: test if the data has one, else validation (with
    val_split), else train."""
    from .data import parts
    from .train import data_spec

    # without data, evaluating any part says that data is missing
    if session.config.data is not None and "test" in parts(data_spec(session), session.path.parent):
        return "test", "the data has a test part"
    if session.config.val_split > 0:
        return "validation", "the data has no test part"
    return "train", "the data has no test part and there is no val_split"


def cmd_predict(args: argparse.Namespace) -> int:
    from .runner import input_arrays, load_array_file, save

    model, trainer = trained_model(args)
    names = [a.name for a in trainer.role("input")]
    if "=" in args.input or args.input.endswith(".npz"):
        given = input_arrays([args.input])
    else:
        array = load_array_file(args.input)
        if isinstance(array, dict):
            raise IrnError(f"{args.input}: expected one array")
        given = {names[0]: array}
    missing = [n for n in names if n not in given]
    if missing:
        raise IrnError(f"predict needs the input(s) {', '.join(missing)}")
    output = model.predict([given[n] for n in names])
    if args.output:
        save(Path(args.output), (output,))
        print(f"wrote {args.output}: {output.dtype}{list(output.shape)}")
    else:
        print(np.array2string(output, threshold=200))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .model import Model

    model = Model.open(args.file, model=args.model, target="reference", seed=args.seed)
    if args.checkpoint:
        model.load(args.checkpoint)
    model.export(args.output, opset=args.opset)
    print(f"wrote {args.output}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .onnx_import import write_imported

    irn, weights = write_imported(Path(args.file), Path(args.output), args.name)
    print(f"wrote {irn} and {weights}")
    return 0


def cmd_warmup(args: argparse.Namespace) -> int:
    from .warmup import programs, warm_up

    for done in warm_up(args.files or programs()):
        print(
            f"{Path(done.file).name}: {done.compiled} kernels compiled, {done.loaded} already "
            f"in the cache ({done.seconds:.1f} s)",
            flush=True,
        )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from .sample import sample

    model, _ = trained_model(args)
    print(sample(model, args.prompt, args.length, args.temperature, args.seed or 0))
    return 0


# --- argument parsing --------------------------------------------------------------------------


def add_print_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generic", action="store_true", help="print ops in MLIR's generic form")
    p.add_argument("--no-locations", action="store_true", help="omit loc(...) source locations")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irnet",
        description="irnet: a neural-network compiler from .irn models to Numba code via xDSL IR.",
    )
    parser.add_argument("--version", action="version", version=f"irnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="parse and verify; print signatures and parameters")
    check.add_argument("file")
    check.set_defaults(run=cmd_check)

    dump = sub.add_parser(
        "dump",
        help="print the IR after any stage a target runs, or its kernels",
        description="Print one stage of compiling FILE: the IR after the frontend or after "
        "a pass, or the kernels. The cpu and cuda targets' stages end with fuse-elementwise, "
        "plan-memory, emit-cpu/emit-cuda (the IR, each op marked with its kernel) and "
        "'kernels': the kernel IR, the Numba module that `irnet compile` writes. Without a "
        f"stage flag, dump prints the IR after {stages.DEFAULT_STAGE}, or the last stage of "
        "-p when it is given.",
    )
    dump.add_argument("file")
    stage = dump.add_mutually_exclusive_group()
    stage.add_argument("--after", metavar="STAGE", help="print the IR (or kernels) after STAGE")
    stage.add_argument("--before", metavar="STAGE", help="print the IR just before STAGE")
    stage.add_argument("--print-ir-after-all", action="store_true", help="print after every stage")
    dump.add_argument(
        "--target", choices=tuple(driver.TARGET_PIPELINES), default="cpu",
        help="whose stages to run (default: cpu): frontend, "
        f"{', '.join(driver.PIPELINE)}; then for cpu and cuda fuse-elementwise, plan-memory, "
        "emit-cpu or emit-cuda, kernels",
    )  # fmt: skip
    dump.add_argument(
        "-p", "--pipeline", metavar="PIPELINE",
        help="run these passes instead of the target's (xDSL syntax; '' runs none)",
    )  # fmt: skip
    add_print_flags(dump)
    dump.add_argument(
        "--distributed", action="store_true",
        help="train-block steps for data-parallel training (a dist.allreduce per step)",
    )  # fmt: skip
    dump.set_defaults(run=cmd_dump)

    opt = sub.add_parser("opt", help="run a pass pipeline on .irn or .mlir input")
    opt.add_argument("file")
    opt.add_argument("-p", "--passes", default="", help="pipeline, e.g. inline-functions,cse")
    opt.add_argument("-o", "--output", help="write the IR here instead of stdout")
    add_print_flags(opt)
    opt.set_defaults(run=cmd_opt)
    train_cmd = sub.add_parser("train", help="train a model as its train block says")
    add_train_flags(train_cmd)
    train_cmd.add_argument(
        "--checkpoint-dir",
        default="checkpoints",
        help="where to write a checkpoint after every epoch (default: checkpoints)",
    )
    start = train_cmd.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="CKPT",
        help="continue from a checkpoint (default: the latest in --checkpoint-dir)",
    )
    start.add_argument(
        "--init-from",
        metavar="CKPT",
        help="start from a checkpoint's parameters: fresh optimizer state, epoch 0",
    )
    train_cmd.add_argument(
        "--non-strict",
        action="store_true",
        help="with --init-from: load the parameters that fit, report the others",
    )
    train_cmd.add_argument(
        "--stop-after",
        type=int,
        metavar="EPOCHS",
        help="train at most this many epochs now; --resume continues",
    )
    train_cmd.add_argument("--log", help="append one JSON line per epoch to this file")
    train_cmd.add_argument("--plot", help="write loss and accuracy curves to this PNG")
    train_cmd.add_argument(
        "--detect-anomaly",
        action="store_true",
        help="stop at the first NaN or Inf and name the .irn line that made it",
    )
    train_cmd.add_argument(
        "--distributed", action="store_true",
        help="data-parallel over MPI (automatic under mpirun)",
    )  # fmt: skip
    train_cmd.set_defaults(run=cmd_train)

    eval_cmd = sub.add_parser("eval", help="loss and metrics of a checkpoint on data")
    add_train_flags(eval_cmd)
    eval_cmd.add_argument("--checkpoint", required=True)
    eval_cmd.add_argument(
        "--part",
        choices=["test", "validation", "train"],
        help="default: test if the data has one, else validation with val_split, else train",
    )
    eval_cmd.set_defaults(run=cmd_eval)

    predict = sub.add_parser("predict", help="a checkpoint's outputs for inputs in .npy/.npz")
    add_train_flags(predict)
    predict.add_argument("--checkpoint", required=True)
    predict.add_argument("--input", required=True, metavar="X.npy | NAME=X.npy | X.npz")
    predict.add_argument("-o", "--output", help="save the outputs (.npy)")
    predict.set_defaults(run=cmd_predict)

    sample_cmd = sub.add_parser("sample", help="generate text with a trained character model")
    add_train_flags(sample_cmd)
    sample_cmd.add_argument("--checkpoint", required=True)
    sample_cmd.add_argument("--prompt", default="\n")
    sample_cmd.add_argument("--length", type=int, default=400)
    sample_cmd.add_argument("--temperature", type=float, default=0.8)
    sample_cmd.set_defaults(run=cmd_sample)

    run = sub.add_parser("run", help="run a model on inputs from .npy/.npz files")
    run.add_argument("file")
    run.add_argument("--function", help="the function to run (default: the first model)")
    run.add_argument(
        "-i", "--input", action="append", default=[], metavar="NAME=FILE.npy | FILE.npz",
        help="an input array by argument name, or an .npz of arrays named like the arguments",
    )  # fmt: skip
    run.add_argument("--seed", type=int, default=0, help="seed of the parameter initialisers")
    run.add_argument("--checkpoint", help="take the parameters from this checkpoint instead")
    run.add_argument("--f64", action="store_true", help="build the program in float64")
    run.add_argument("--training", action="store_true", help="run in training mode (dropout on)")
    run.add_argument("-o", "--output", help="save the result (.npy, or .npz for several)")
    add_run_flags(run)
    run.set_defaults(run=cmd_run)

    repl = sub.add_parser("repl", help="an interactive session: evaluate .irn expressions")
    repl.add_argument("file", nargs="?", help="a .irn file to load first")
    add_threads_flag(repl)
    repl.set_defaults(run=cmd_repl)

    compile_cmd = sub.add_parser(
        "compile", help="write the compiled module (Numba kernels) of a file's functions"
    )
    compile_cmd.add_argument("file")
    compile_cmd.add_argument("--target", choices=tuple(targets.EMITTERS), default="cpu")
    compile_cmd.add_argument("-o", "--output", help="write the module here instead of stdout")
    compile_cmd.add_argument("--f64", action="store_true", help="build the program in float64")
    compile_cmd.add_argument(
        "--ptx", metavar="DIR", help="cuda: also compile every kernel to PTX, one file each"
    )
    compile_cmd.add_argument(
        "--cc", default="9.0", help="cuda: the compute capability of --ptx (default 9.0: H100)"
    )
    compile_cmd.add_argument(
        "--parallel", action=argparse.BooleanOptionalAction, default=None,
        help="cpu: parallel loops in large kernels (default: with 4 cores or more)",
    )  # fmt: skip
    compile_cmd.set_defaults(run=cmd_compile)

    export = sub.add_parser(
        "export",
        help="write a model for other tools: .onnx (inference) or .safetensors (weights)",
    )
    export.add_argument("file")
    export.add_argument("--checkpoint", help="the weights (default: the initialisers)")
    export.add_argument("-o", "--output", required=True, metavar="OUT.onnx | OUT.safetensors")
    export.add_argument("--model", help="which model of the file (default: the first)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--seed", type=int, help="seed of the initialisers without --checkpoint")
    export.set_defaults(run=cmd_export)

    import_cmd = sub.add_parser(
        "import", help="turn an ONNX model into a .irn program and its .safetensors weights"
    )
    import_cmd.add_argument("file", metavar="MODEL.onnx")
    import_cmd.add_argument(
        "-o", "--output", required=True, metavar="OUT.irn",
        help="the program; its weights go beside it as OUT.safetensors",
    )  # fmt: skip
    import_cmd.add_argument("--name", help="the model's name in the program (default: OUT)")
    import_cmd.set_defaults(run=cmd_import)

    warmup = sub.add_parser(
        "warmup",
        help="compile the kernels of common layer chains into the cache ahead of a first model",
    )
    warmup.add_argument(
        "files", nargs="*", metavar="FILE", help=".irn files to warm up (default: irnet's own)"
    )
    add_threads_flag(warmup)
    warmup.set_defaults(run=cmd_warmup)

    check_grads = sub.add_parser(
        "gradcheck", help="compare autodiff gradients with finite differences (float64)"
    )
    check_grads.add_argument("file")
    check_grads.add_argument("--function", help="a function returning a float scalar")
    check_grads.add_argument("--seed", type=int, default=0)
    check_grads.add_argument("--batch", type=int, default=3, help="size of `?` dimensions")
    check_grads.add_argument("--samples", type=int, default=24, help="entries checked per tensor")
    check_grads.set_defaults(run=cmd_gradcheck)
    return parser


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """The file, and a flag for every train-block entry."""
    p.add_argument("file")
    p.add_argument("--model", help="which train block (default: the first)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float, help="the optimizer's learning rate")
    p.add_argument("--optimizer", help="e.g. adam or 'adam(lr=3e-4, weight_decay=1e-4)'")
    p.add_argument("--schedule", help="e.g. 'cosine(warmup=200)'")
    p.add_argument("--seed", type=int)
    p.add_argument("--data", help="e.g. 'mnist(\"data/mnist\")', relative to the .irn file")
    p.add_argument("--val-split", type=float, dest="val_split")
    p.add_argument(
        "--f64",
        action="store_true",
        help="build the program in float64: every f32 becomes f64, literals and optimiser "
        "constants included (a checkpoint then holds float64 weights)",
    )
    p.add_argument(
        "--shuffle", action=argparse.BooleanOptionalAction, help="shuffle each epoch (default)"
    )
    p.add_argument("--monitor", help="the metric --patience and --keep-best watch (val_loss)")
    p.add_argument("--patience", type=int, help="stop after this many epochs without progress")
    p.add_argument(
        "--keep-best",
        action=argparse.BooleanOptionalAction,
        dest="keep_best",
        help="also keep <model>-best.npz, the checkpoint of the best monitored epoch",
    )
    add_run_flags(p)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """`--target` and `--threads`, for the commands that run a model."""
    p.set_defaults(picks_target=True)
    p.add_argument(
        "--target",
        choices=targets.TARGETS,
        help="run on NumPy (reference), compiled with Numba for the CPU (cpu) or an NVIDIA GPU "
        "(cuda; NUMBA_ENABLE_CUDASIM=1 runs it in Numba's simulator); auto: cpu where Numba "
        f"works, else reference (default: ${targets.TARGET_ENV}, else auto)",
    )
    add_threads_flag(p)


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        metavar="N",
        help=f"compute with N threads, or 'off' to leave the libraries' own (default: "
        f"${threads.ENV}, else the cores that other processes leave free)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        start_running(args)
        return args.run(args)
    except IrnError as e:
        complain(str(e))
        return 1
    except KeyboardInterrupt:
        complain("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # an irnet bug, not a user mistake
        if os.environ.get("IRNET_TRACEBACK"):
            traceback.print_exc()
        complain(
            f"internal error: {type(e).__name__}: {e}\n"
            "This is a bug in irnet; rerun with IRNET_TRACEBACK=1 for the traceback."
        )
        return 2
    finally:
        release_closed_stdout()


def start_running(args: argparse.Namespace) -> None:
    """For a command that runs code: its target (`--target`, else `IRNET_TARGET`, else auto)
    and thread count (`--threads`, else `IRNET_THREADS`), both checked before any work."""
    if hasattr(args, "threads"):
        threads.configure(args.threads)
    if getattr(args, "picks_target", False):
        args.target = targets.default_target(args.target)


def complain(text: str) -> None:
    """`text` on stderr, if anyone still reads it (`irnet ... 2>&1 | head` closes it too)."""
    with contextlib.suppress(BrokenPipeError):  # the exit status still tells
        print(text, file=sys.stderr, flush=True)


def release_closed_stdout() -> None:
    """Point stdout at /dev/null if its reader has gone: Python flushes it once more at exit,
    and that failure would print a warning and replace the exit status with 120."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
