"""The cpu target's fast path: for a tiny workload, an entry point also gets an `@njit` function
running all its kernels in one compiled call, with no Python between them, taken for argument
shapes that a checked call has already seen fit."""

from __future__ import annotations

import re

from .source import tuple_src


def fast_lines(lines: list[str]) -> list[str] | None:
    """An entry point's `lines` for a compiled fast path, or None when it has a host step no
    compiled code can take (random draws, index checks). What it leaves out are the size
    checks (the arguments' shapes are known to fit) and the workspace (it allocates)."""
    fast = []
    for line in lines:
        text = line.strip()
        if any(h in text for h in ("_uniform(", "_indices(", "_window_size(", "_scan(")):
            return None
        if text.startswith(("#", "if check_finite:", "_same(", "_check(")):
            continue
        workspace = re.fullmatch(
            r"(\w+) = _ws\(ws, (?:\d+|\('s', \d+, \d+\)), (.*), (np\.\w+)\)", text
        )
        reshape = re.fullmatch(r"(\w+) = _reshape\(\d+, (\w+), (.*)\)", text)
        if workspace:
            text = "{} = np.empty({}, {})".format(*workspace.groups())
        elif reshape:
            text = "{} = {}.reshape({})".format(*reshape.groups())
        fast.append("    " + text)
    return fast


def with_fast_path(
    symbol: str,
    pyname: str,
    head: list[str],
    body: list[str],
    lines: list[str],
    fast: list[str],
    arg_names: list[str],
    uses_training: bool,
) -> list[str]:
    """The entry point: the fast path for argument shapes that a checked call has seen fit
    (the kernels in one compiled call, no Python between them; Numba's dispatch checks
    the dtypes and layouts, as the fast path compiles for one signature only), else the
    checked path."""
    consts = sorted(set(re.findall(r"\b_C\d+\b", "\n".join(fast))), key=lambda c: int(c[2:]))
    params = ", ".join([*arg_names, *consts, "training"])
    checked, compiled = f"_checked_{pyname}", f"_fast_{pyname}"
    kw = "training=training, step=step, seed=seed, check_finite=check_finite"
    key = tuple_src([f"{n}.shape" for n in arg_names])
    args = ", ".join(arg_names)
    fast_body = (["    v_training = np.array(training)"] if uses_training else []) + fast
    return [
        *head,
        "    try:",
        f"        key = {key}",
        "    except AttributeError:  # not arrays: the checks below convert them",
        "        key = None",
        f"    if not check_finite and key in _FAST.get({symbol!r}, ()):",
        "        try:",
        f"            return {compiled}({params})",
        "        except TypeError:  # not the dtypes and layouts it was compiled for",
        "            pass",
        f"    given = {tuple_src(arg_names)}",
        *[line for line in body if "_arg(" in line],
        f"    out = {checked}({args}{', ' if args else ''}{kw})",
        f"    if key is not None and _same_objects({tuple_src(arg_names)}, given):",
        f"        _remember({symbol!r}, key, {compiled}, ({params},))",
        "    return out",
        "",
        "",
        f"def {checked}({args}{', ' if args else ''}*, training, step, seed, check_finite):",
        f'    """@{symbol}, each kernel called from Python, with every check."""',
        *[line for line in body if "_arg(" not in line],
        *lines,
        "",
        "",
        "@njit(**JIT)",
        f"def {compiled}({params}):",
        f'    """@{symbol}, every kernel in one compiled call: for shapes known to fit."""',
        *fast_body,
    ]
