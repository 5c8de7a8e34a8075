"""Tests of the runtime that emitted modules copy (`lowering/runtime/`), as ordinary Python:
the host helpers and the hand-written kernels, called directly and checked against NumPy
(the cuda ones in Numba's CUDA simulator, which `conftest.py` turns on), and the texts that
`cpu_runtime` and `cuda_runtime` make of them: they compile, and every name they read is
defined by the prelude or by a helper that DEPENDS copies first.
"""

from __future__ import annotations

import builtins
import importlib.util
import symtable
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT
from numba import njit

from irnet import cuda as cuda_target
from irnet.lowering import cpu_runtime, cuda_runtime
from irnet.lowering.runtime import cpu_host, cpu_kernels, cuda_kernels, host

RUNTIMES = [cpu_runtime, cuda_runtime]
KERNELS = {cpu_runtime: cpu_kernels, cuda_runtime: cuda_kernels}


# --- the texts ---------------------------------------------------------------------------------


def undefined(text: str) -> set[str]:
    """The global names that code `text` reads but neither defines nor imports."""
    top = symtable.symtable(text, "<emitted>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}

    def read(table: symtable.SymbolTable) -> set[str]:
        names = {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global()}
        return names.union(*(read(child) for child in table.get_children()))

    return read(top) - bound - set(dir(builtins))


def with_dependencies(runtime: ModuleType, name: str) -> list[str]:
    """Helper `name` after the helpers that it needs, as the emitter copies them."""
    order: list[str] = []
    for dep in runtime.DEPENDS.get(name, ()):
        order += [d for d in with_dependencies(runtime, dep) if d not in order]
    return [*order, name]


@pytest.mark.parametrize("runtime", RUNTIMES, ids=["cpu", "cuda"])
def test_every_helper_and_dependency_is_defined(runtime):
    assert set(runtime.DEPENDS) <= set(runtime.HELPERS)
    for name, deps in runtime.DEPENDS.items():
        assert deps and set(deps) <= set(runtime.HELPERS) - {name}, name
    for name in runtime.HELPERS:
        assert callable(getattr(KERNELS[runtime], name)), name


@pytest.mark.parametrize("runtime", RUNTIMES, ids=["cpu", "cuda"])
def test_prelude_and_helpers_compile_and_define_what_they_read(runtime):
    """The prelude, alone and under each helper with its dependencies, compiles and reads no
    name it lacks, apart from the table of sites that the emitter writes after them."""
    compile(runtime.PRELUDE, "<prelude>", "exec")
    assert undefined(runtime.PRELUDE) == {"SITES"}
    for name, text in runtime.HELPERS.items():
        compile(text, f"<{name}>", "exec")
        module = [runtime.PRELUDE, *(runtime.HELPERS[h] for h in with_dependencies(runtime, name))]
        assert undefined("\n\n\n".join(module)) == {"SITES"}, name


def test_a_helper_brings_the_imports_that_the_prelude_lacks():
    head = cpu_runtime.HELPERS["_f32_from_bits"].split("\n\n\n")[0].splitlines()
    assert head == [
        "from llvmlite import ir as _ir",
        "from numba import types as _types",
        "from numba.extending import intrinsic",
    ]
    assert "import" not in cpu_runtime.HELPERS["_conv2d"]  # JIT and np: the prelude's


def test_the_preludes_share_the_host_code_and_leave_out_the_modules_own_header():
    for runtime in RUNTIMES:
        assert runtime.PRELUDE.startswith(runtime.IMPORTS.strip("\n"))
        assert "class KernelError(ValueError):" in runtime.PRELUDE
        assert runtime.PRELUDE.count("import numpy as np") == 1
        assert "from ." not in runtime.PRELUDE  # the runtime modules' imports of each other


def test_pooling_kernels_are_specialised_for_one_window():
    for name in cpu_runtime.POOLING:
        window = (3, 3, 2, 2, 1, 1, *((0,) if "avg" in name else ()))  # incl: the averages'
        text = cpu_runtime.specialised(cpu_runtime.HELPERS[name], f"{name}_w", window)
        assert f"def {name}_w(" in text and "KH" not in text and "incl" not in text, name
        assert text.rstrip().endswith(f", {', '.join(map(str, window))})"), name
    # a window that tiles its input takes the tiled branch, and only that one is compiled
    tiled = cpu_runtime.HELPERS["_max_pool2d_grad"]
    text = cpu_runtime.specialised(tiled, "g", (2, 2, 2, 2, 0, 0))
    assert "_max_pool2d_grad_tiled(x, dy, dx, 2, 2)" in text
    assert "_body" not in text.split('"""')[-1]


def test_sources_name_every_runtime_module_that_is_copied():
    """The modules whose text the emitted modules copy: a compile cache's key hashes them."""
    folder = ROOT / "lowering" / "runtime"
    copied = {f"runtime.{p.stem}" for p in folder.glob("*.py")} - {
        "runtime.__init__",
        "runtime.emitted",  # stand-ins, never copied
    }
    assert set(cpu_runtime.SOURCES) | set(cuda_runtime.SOURCES) == copied
    for name in copied:
        assert importlib.util.find_spec(f"irnet.lowering.{name}") is not None


# --- host helpers ------------------------------------------------------------------------------


def test_arg_passes_a_fitting_array_through():
    a = np.zeros((2, 3), np.float32)
    assert cpu_host._arg(a, np.float32, (2, 3), "x") is a
    assert cpu_host._arg(a, np.float32, (-1, 3), "x") is a


def test_arg_converts_what_fits_after_a_copy():
    a = cpu_host._arg([[1.0, 2.0, 3.0]], np.float32, (-1, 3), "x")  # float64 in
    assert a.dtype == np.float32 and a.flags.c_contiguous and a.tolist() == [[1, 2, 3]]
    strided = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    b = cpu_host._arg(strided, np.float32, (3, 2), "x")
    assert b.flags.c_contiguous and np.array_equal(b, strided)
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    assert cpu_host._arg(frozen, np.float32, (3,), "x").flags.writeable


@pytest.mark.parametrize(
    ("value", "dtype", "shape", "message"),
    [
        (np.zeros(2), np.int32, (2,), "x is float64[2], not int32"),
        (np.zeros(2, bool), np.float32, (2,), "x is bool[2], not float32"),
        (np.zeros((2, 3)), np.float32, (-1, 4), "x has shape [2, 3], which does not fit [?, 4]"),
        (np.zeros(3), np.float32, (1, 3), "x has shape [3], which does not fit [1, 3]"),
    ],
)
def test_arg_refuses_what_does_not_fit(value, dtype, shape, message):
    with pytest.raises(host.ArgumentError) as e:
        cpu_host._arg(value, dtype, shape, "x")
    assert str(e.value) == message


def test_workspaces_are_allocated_once_per_slot_and_shape():
    ws: dict = {}
    a = host._ws(ws, 0, (2, 3), np.float32)
    assert host._ws(ws, 0, (2, 3), np.float32) is a
    assert host._ws(ws, 0, (3, 2), np.float32) is not a
    assert host._ws(ws, 1, (2, 3), np.float32) is not a


def test_kernel_errors_name_the_site(monkeypatch):
    monkeypatch.setattr(host, "SITES", (("_k0", "nn.add", "model.irn:3:5"),))
    with pytest.raises(host.KernelError, match=r"^model\.irn:3:5: nn\.add: boom$"):
        host._check(0, False, "boom")
    with pytest.raises(host.KernelError, match=r"run-time sizes \[2, 3\] differ"):
        host._same(0, (2, 3), "batch")
    with pytest.raises(host.NonFiniteError, match="produced NaN") as e:
        cpu_host._finite(0, [np.array([1.0, np.nan])], [])
    assert e.value.output == 0 and e.value.kind == "NaN"


def test_uniform_draws_below_one_from_a_repeatable_stream():
    a = cpu_host._uniform(1, 2, 3, (1000,), np.float32)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() < 1
    assert np.array_equal(a, cpu_host._uniform(1, 2, 3, (1000,), np.float32))
    assert not np.array_equal(a, cpu_host._uniform(1, 2, 4, (1000,), np.float32))


# --- cpu scalar functions ----------------------------------------------------------------------


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The distance in float32 units in the last place, by the ordering of the IEEE bits."""

    def ordered(x: np.ndarray) -> np.ndarray:
        bits = x.astype(np.float32).view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)

    return np.abs(ordered(a) - ordered(b))


@pytest.mark.parametrize(
    ("name", "exact", "within"), [("_exp32", np.exp, 1), ("_tanh32", np.tanh, 5)]
)
def test_float32_exp_and_tanh_are_within_their_ulps(name, exact, within):
    """Against the float64 function, rounded; in a loop that Numba vectorises, as in the
    emitted kernels; inf, 0 and NaN as in NumPy."""
    scalar = getattr(cpu_kernels, name)

    @njit(**{**cpu_kernels.JIT, "cache": False})
    def apply(x, out):
        for i in range(x.size):
            out[i] = scalar(x[i])

    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            rng.uniform(-110, 100, 10**6),
            rng.uniform(-1, 1, 10**6),
            rng.uniform(-1e-3, 1e-3, 10**4),
            [0.0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.73, -104.0, -110.0],
        ]
    ).astype(np.float32)
    got = np.empty_like(x)
    apply(x, got)
    with np.errstate(over="ignore"):
        want = exact(x.astype(np.float64)).astype(np.float32)
    finite = np.isfinite(want)
    assert ulps(got[finite], want[finite]).max() <= within
    np.testing.assert_array_equal(got[~finite], want[~finite])


# --- convolution and pooling on both targets ---------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A target's kernels as an emitted module calls them, and its arrays."""

    kernels: object
    put: Callable[[np.ndarray], object]
    get: Callable[[object], np.ndarray]
    specialised_pooling: bool = False
    """Whether the emitter specialises its pooling kernels for each window (the cpu's)."""

    def pooling(self, name: str, window: tuple[int, ...]) -> Callable:
        """Pooling kernel `name` for `window`, as an emitted module gets it: the cpu's
        specialised for the window, the cuda's given it at run time."""
        if not self.specialised_pooling:
            return lambda *args: getattr(self.kernels, name)(*args, *window)
        special = "_".join([name, *map(str, window)])
        namespace = vars(self.kernels)
        if special not in namespace:
            text = cpu_runtime.specialised(cpu_runtime.HELPERS[name], special, window)
            exec(text, namespace)
        return namespace[special]


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def target(request) -> Target:
    if request.param == "cpu":
        # without Numba's disk cache, which needs a file to put the code of the specialised
        # pooling kernels beside
        namespace = {**vars(cpu_kernels), "JIT": {**cpu_kernels.JIT, "cache": False}}
        return Target(SimpleNamespace(**namespace), np.array, np.asarray, True)
    problem = cuda_target.device_problem()  # neither a GPU nor the simulator
    if problem:
        pytest.skip(problem)
    from numba import cuda

    return Target(cuda_kernels, cuda.to_device, lambda a: a.copy_to_host())


def conv2d_reference(x, w, stride, pad, dilation, groups):
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    (N, _, H, W), (outs, ins, KH, KW) = x.shape, w.shape
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((N, outs, OH, OW))
    og = outs // groups
    for i in range(KH):
        for j in range(KW):
            rows = slice(i * dh, i * dh + sh * (OH - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (OW - 1) + 1, sw)
            for g in range(groups):
                patch = xp[:, g * ins : (g + 1) * ins, rows, cols]
                out[:, g * og : (g + 1) * og] += np.einsum(
                    "ncyz,oc->noyz", patch, w[g * og : (g + 1) * og, :, i, j]
                )
    return out


CONVOLUTIONS = [  # stride, padding, dilation, groups: plain, then everything else
    ((1, 1), (0, 0), (1, 1), 1),
    ((2, 1), (1, 2), (1, 2), 2),
]


@pytest.mark.parametrize(
    ("stride", "pad", "dilation", "groups"), CONVOLUTIONS, ids=["plain", "strided"]
)
def test_conv2d_and_its_gradients(target, stride, pad, dilation, groups):
    """The product against NumPy; the gradients as its adjoints in x and in w:
    <conv(x, w), dy> = <x, grad_input(dy, w)> = <w, grad_weight(x, dy)>."""
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(2, 4, 6, 7)), rng.normal(size=(4, 4 // groups, 3, 2))
    want = conv2d_reference(x, w, stride, pad, dilation, groups)
    dy = rng.normal(size=want.shape)
    og, K, NP = w.shape[0] // groups, w[0].size, want[:, 0].size
    cols, dmat, res = (np.zeros(shape) for shape in [(K, NP), (og, NP), (og, NP)])
    window = (*stride, *pad, *dilation, groups)
    k, put, get = target.kernels, target.put, target.get

    out = put(np.zeros(want.shape))
    k._conv2d(put(x), put(w), out, put(cols), put(res), *window)
    np.testing.assert_allclose(get(out), want, rtol=1e-12, atol=1e-12)

    dx = put(np.zeros(x.shape))
    k._conv2d_grad_input(put(dy), put(w), dx, put(cols), put(dmat), *window)
    dw = put(np.zeros(w.shape))
    wres = put(np.zeros((og, K)))
    k._conv2d_grad_weight(put(x), put(dy), dw, put(cols), put(dmat), wres, *window)
    product = np.vdot(want, dy)
    np.testing.assert_allclose([np.vdot(x, get(dx)), np.vdot(w, get(dw))], [product] * 2)


def pool_windows(x, window, fill):
    """Every window of `x` padded with `fill`: [KH*KW, N, C, OH, OW], row-major in the window."""
    KH, KW, sh, sw, ph, pw = window
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    OH, OW = (xp.shape[2] - KH) // sh + 1, (xp.shape[3] - KW) // sw + 1
    return np.stack(
        [
            xp[:, :, i : i + sh * (OH - 1) + 1 : sh, j : j + sw * (OW - 1) + 1 : sw]
            for i in range(KH)
            for j in range(KW)
        ]
    )


def max_pool2d_grad_reference(x, dy, window):
    """Each window's gradient to the first position of its maximum, unless that is padding."""
    KH, KW, sh, sw, ph, pw = window
    first = pool_windows(x, window, -np.inf).argmax(axis=0)
    dx = np.zeros(x.shape)
    for n, c, y, z in np.ndindex(dy.shape):
        h, w = y * sh - ph + first[n, c, y, z] // KW, z * sw - pw + first[n, c, y, z] % KW
        if 0 <= h < x.shape[2] and 0 <= w < x.shape[3]:
            dx[n, c, h, w] += dy[n, c, y, z]
    return dx


WINDOWS = [  # KH, KW, sh, sw, ph, pw: two common ones (tiled, overlapping), then another
    (2, 2, 2, 2, 0, 0),
    (3, 3, 2, 2, 1, 1),
    (2, 3, 1, 2, 1, 0),
]


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: "x".join(map(str, w)))
def test_pooling_and_its_gradients(target, window):
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=(2, 3, 5, 7)) * 2)  # ties: the first maximum takes the gradient
    windows = pool_windows(x, window, -np.inf)
    dy = rng.normal(size=windows.shape[1:])
    put, get = target.put, target.get

    def pool(name):
        """The kernel as the emitted module calls it: for cpu, specialised for the window."""
        return target.pooling(name, window)

    out = put(np.zeros(dy.shape))
    pool("_max_pool2d")(put(x), out)
    np.testing.assert_array_equal(get(out), windows.max(axis=0))
    dx = put(np.full(x.shape, np.nan))  # every element written
    pool("_max_pool2d_grad")(put(x), put(dy), dx)
    np.testing.assert_allclose(get(dx), max_pool2d_grad_reference(x, dy, window), atol=1e-12)

    for incl, mean in [
        (1, pool_windows(x, window, 0.0).mean(axis=0)),  # padded zeros count in the divisor
        (0, np.nanmean(pool_windows(x, window, np.nan), axis=0)),  # only the pixels inside
    ]:
        out = put(np.zeros(dy.shape))
        target.pooling("_avg_pool2d", (*window, incl))(put(x), out)
        np.testing.assert_allclose(get(out), mean, rtol=1e-12)
        dx = put(np.full(x.shape, np.nan))
        target.pooling("_avg_pool2d_grad", (*window, incl))(put(dy), dx)
        np.testing.assert_allclose(np.vdot(x, get(dx)), np.vdot(mean, dy))
