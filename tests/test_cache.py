"""The compile cache cannot be turned against its user: entries are checked against their
manifest, and kernel units against their names, before anything in them runs; damaged ones are
rebuilt, and folders other users can write are refused. Its keys are the IR's content: a moved
file or a comment finds the same entry, and kernels are shared between models."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, console_script, subprocess_env
from numba.core.dispatcher import Dispatcher

from irnet import cpu, driver, kernel_cache, parser, warmup
from irnet.cpu import MANIFEST, CpuRunner
from irnet.diagnostics import IrnError

SOURCE = "model m(x: f32[N, 3]) -> f32[N, 3] { return exp(x) * 2.0 }"
X = np.zeros((2, 3), np.float32)
EXPECTED = np.full((2, 3), 2.0, np.float32)


def tiny_module():
    module = driver.compile_source(SOURCE, "t.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    return module


@pytest.fixture(autouse=True)
def fresh_imports(monkeypatch):
    """Each test imports the cached module and its kernels anew, as a new process would."""
    monkeypatch.setattr(cpu, "_LOADED", {})
    monkeypatch.setattr(kernel_cache, "_OPEN", {})


def forget_loaded() -> None:
    """Forget the modules and kernels imported so far, as a new process would."""
    cpu._LOADED.clear()
    kernel_cache._OPEN.clear()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A cache holding the tiny model with its kernels compiled, copied by each test so
    that Numba loads them rather than compiling again."""
    root = tmp_path_factory.mktemp("pristine")
    CpuRunner(tiny_module(), cache=root, parallel=False).run("m", [X])
    return root


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(pristine, copy)  # copy2 keeps the mtimes Numba's index checks
    return copy


def entry_of(root: Path) -> Path:
    (folder,) = (root / "cpu").glob("*/")
    return folder


def run(root: Path) -> CpuRunner:
    runner = CpuRunner(tiny_module(), cache=root, parallel=False)
    (out,) = runner.run("m", [X])
    np.testing.assert_array_equal(out, EXPECTED)
    return runner


def unit_manifests(root: Path) -> dict[str, dict[str, str]]:
    return {p.name.split(".")[0]: json.loads(p.read_text()) for p in kernels(root).glob("*.json")}


def kernels(root: Path) -> Path:
    return root / "kernels"


def test_an_intact_entry_is_used_and_its_folders_are_private(tmp_path):
    root = tmp_path / "new" / "cache"
    cold = run(root)
    assert cold.compiled.created
    entry = entry_of(root)
    for folder in (root, root / "cpu", entry, kernels(root), kernels(root) / "__pycache__"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["key"] == cold.compiled.key
    numba_files = sorted(p.name for p in (kernels(root) / "__pycache__").glob("*.nb[ic]"))
    listed = sorted(name for files in unit_manifests(root).values() for name in files)
    assert numba_files and listed == numba_files

    forget_loaded()
    warm = run(root)
    assert not warm.compiled.created
    assert warm.stats()["compiled"] == 0 and warm.stats()["cache_hits"] > 0


def plant(module: Path) -> None:
    marker = module.parent.parent.parent.parent / "planted"
    module.write_text(f"open({str(marker)!r}, 'w').close()\nFUNCTIONS = {{}}\n")


DAMAGE = {
    "planted module": plant,
    "one character": lambda p: p.write_text(p.read_text().replace("'m'", "'n'")),
    "truncated module": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty module": lambda p: p.write_bytes(b""),
    "garbled module": lambda p: p.write_bytes(bytes(range(256)) * 8),
    "garbled manifest": lambda p: (p.parent / MANIFEST).write_text('{"key": '),
    "missing manifest": lambda p: (p.parent / MANIFEST).unlink(),
    "foreign manifest": lambda p: (p.parent / MANIFEST).write_text(
        json.dumps({"key": "0" * 64, "module": cpu.sha256(p.read_bytes()), "kernels": {}})
    ),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_or_planted_entry_is_rebuilt_not_run(root, damage, capsys):
    module = entry_of(root) / "model_cpu.py"
    DAMAGE[damage](module)
    runner = run(root)
    assert runner.compiled.created
    assert not (root.parent / "planted").exists()
    assert "irnet: rebuilding the damaged compile cache entry" in capsys.readouterr().err or (
        damage == "missing manifest"
    )
    # the rebuilt entry verifies: the next process uses it as it is
    forget_loaded()
    assert not run(root).compiled.created


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_text(p.read_text().replace("float32(2.0)", "float32(3.0)")),
        lambda p: p.write_text(f"open({str(p.parent.parent / 'planted')!r}, 'w').close()\n"),
        lambda p: p.unlink(),
    ],
    ids=["one character", "planted", "missing"],
)
def test_a_damaged_or_missing_kernel_unit_is_stored_again_not_run(root, damage, capsys):
    (unit,) = [p for p in kernels(root).glob("k_*.py") if "float32(2.0)" in p.read_text()]
    damage(unit)
    runner = run(root)
    assert runner.compiled.created
    assert not (root / "planted").exists()
    assert "irnet: rebuilding the compile cache entry" in capsys.readouterr().err
    forget_loaded()
    assert not run(root).compiled.created


def test_numba_files_that_do_not_match_the_manifest_are_compiled_again(root):
    pycache = kernels(root) / "__pycache__"
    for data in pycache.glob("*.nbc"):
        data.write_bytes(b"garbage, not a pickle")
    unit = next(kernels(root).glob("k_*.py")).stem
    (pycache / f"{unit}.planted-1.py311.nbi").write_bytes(b"not listed")
    runner = run(root)
    assert not runner.compiled.created and runner.stats()["compiled"] >= 1
    assert not (pycache / f"{unit}.planted-1.py311.nbi").exists()
    runner.compiled.kernels.next_look = 0  # record now, not a second after the last look
    runner.compiled.record()
    manifests = unit_manifests(root)
    for file in pycache.glob("*.nb[ic]"):
        assert manifests[file.name.split(".")[0]][file.name] == cpu.sha256(file.read_bytes())


@pytest.mark.parametrize("where", ["root", "entry"])
def test_a_cache_folder_others_can_write_is_refused(root, where):
    folder = root if where == "root" else entry_of(root)
    folder.chmod(0o770)
    with pytest.raises(IrnError, match=r"can be written by other users \(mode 770\)") as info:
        CpuRunner(tiny_module(), cache=root, parallel=False)
    assert f"run `chmod 700 {folder}` or set IRNET_CACHE_DIR" in str(info.value)


def test_the_cli_exits_1_with_one_line_on_a_shared_cache(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    np.save(tmp_path / "x.npy", np.zeros((2, 10), np.float32))
    result = subprocess.run(
        [console_script("irnet"), "run", "examples/linreg.irn", "--target", "cpu",
         "-i", f"x={tmp_path / 'x.npy'}"],
        capture_output=True, text=True, env={**subprocess_env(), "IRNET_CACHE_DIR": str(shared)},
        cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: the compile cache folder {shared} can be written by other users (mode 777); "
        f"run `chmod 700 {shared}` or set IRNET_CACHE_DIR to a folder of your own"
    )
    assert not list(shared.iterdir())


CONCURRENT = f"""
import numpy as np
from irnet import driver
from irnet.cpu import CpuRunner
module = driver.compile_source({SOURCE!r}, "t.irn").module
driver.run_passes(module, ",".join(driver.PIPELINE))
(out,) = CpuRunner(module, parallel=False).run("m", [np.zeros((2, 3), np.float32)])
assert (out == 2).all(), out
"""


def test_processes_compiling_one_model_into_one_empty_cache_at_once_all_succeed(tmp_path):
    env = {**subprocess_env(), "IRNET_CACHE_DIR": str(tmp_path / "cache")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "rebuilding" not in err
    forget_loaded()
    assert not run(tmp_path / "cache").compiled.created


# --- keys from content -------------------------------------------------------------------------

CLASH = """
model m(x: f32[N, 3], y: f32[N, 3]) -> f32[N, 3] {
    return x * y + 1.0
}
"""


def test_a_moved_or_commented_file_finds_its_entry_and_errors_name_the_new_place(tmp_path):
    root = tmp_path / "cache"
    first = driver.compile_source(CLASH, "a.irn").module
    driver.run_passes(first, ",".join(driver.PIPELINE))
    assert CpuRunner(first, cache=root, parallel=False).compiled.created
    moved = driver.compile_source("# a comment\n\n" + CLASH, "elsewhere/b.irn").module
    driver.run_passes(moved, ",".join(driver.PIPELINE))
    runner = CpuRunner(moved, cache=root, parallel=False)
    assert not runner.compiled.created
    x, y = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    with pytest.raises(IrnError) as info:
        runner.run("m", [x, y])
    assert str(info.value).startswith("elsewhere/b.irn:5:")


def test_models_share_the_kernels_they_both_emit(tmp_path):
    root = tmp_path / "cache"
    first = CpuRunner(tiny_module(), cache=root, parallel=False)
    first.run("m", [X])
    forget_loaded()  # shared through the disk, as between processes
    other = SOURCE + "\nmodel n(x: f32[N, 3]) -> f32[N, 3] { return tanh(x) }"
    module = driver.compile_source(other, "u.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    runner = CpuRunner(module, cache=root, parallel=False)
    assert runner.compiled.created  # another program: its own entry...
    runner.run("m", [X])
    # ...whose `m` has the kernels the first compiled
    assert runner.stats()["compiled"] == 0 and runner.stats()["cache_hits"] > 0


# --- warm-up -----------------------------------------------------------------------------------


def test_warmup_compiles_the_kernels_a_new_model_of_other_sizes_then_loads(tmp_path):
    program = tmp_path / "chains.irn"
    program.write_text(SOURCE)
    env = {**subprocess_env(), "IRNET_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [console_script("irnet"), "warmup", str(program)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"chains\.irn: [1-9]\d* kernels compiled, 0 already in the cache \(\d+\.\d s\)\n",
        result.stdout,
    )
    other = driver.compile_source(SOURCE.replace("3]", "7]"), "other.irn").module
    driver.run_passes(other, ",".join(driver.PIPELINE))
    runner = CpuRunner(other, cache=tmp_path / "cache", parallel=False)
    assert runner.compiled.created
    runner.run("m", [np.zeros((2, 7), np.float32)])
    compiled = {
        name
        for name, value in vars(runner.compiled.module).items()
        if isinstance(value, Dispatcher) and value.stats.cache_misses
    }
    assert compiled <= {"_fast_m"}  # its own fast path at most: the kernels were all there


def test_the_shipped_warmup_programs_verify():
    for program in warmup.programs():
        assert driver.load(program).module.verify() is None


# --- parser tables -----------------------------------------------------------------------------


@pytest.fixture
def fresh_parser(tmp_path, monkeypatch):
    monkeypatch.setenv("IRNET_CACHE_DIR", str(tmp_path))
    parser._lark.cache_clear()
    yield
    parser._lark.cache_clear()


def test_parser_tables_from_the_cache_parse_as_the_built_ones(tmp_path, fresh_parser):
    built = parser._lark()
    (tables,) = tmp_path.glob("parser-*.json")
    parser._lark.cache_clear()
    loaded = parser._lark()
    programs = [*ROOT.glob("examples/*.irn"), *ROOT.glob("tests/programs/*.irn")]
    for program in [*programs, ROOT / "irnet" / "stdlib" / "nn.irn"]:
        text = program.read_text()
        assert loaded.parse(text, start="start") == built.parse(text, start="start"), program

    tables.write_text('{"data": ')  # damaged: built again, and the file rewritten
    parser._lark.cache_clear()
    text = (ROOT / "examples" / "linreg.irn").read_text()
    assert parser._lark().parse(text, start="start") == built.parse(text, start="start")
    assert json.loads(tables.read_text())
