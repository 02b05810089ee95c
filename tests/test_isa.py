"""The kernels of every instruction set this machine can run, not only its best.

The core compiles its kernels (csrc/kernels.h and the cells' element-wise parts) once per
instruction set and picks the CPU's best at run time; CRNN_ISA asks for less. The rest of the
suite runs the native kernels; here the activations, the cell grid, the randomised
differential test and the threading tests (whose plans depend on the instruction set: up to how
many rows a thread a batch over weights past L2 splits its units) run again, in a child process,
under each lesser set, against the same NumPy reference and tolerances."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import crnn

ORDER = ["base", "avx2", "avx512"]
TESTS = Path(__file__).resolve().parent
FILES = ["test_vmath.py", "test_rnn_cells.py", "test_differential.py", "test_parallel.py"]


def _child_env(isa: str) -> dict:
    return dict(os.environ, CRNN_ISA=isa)


@pytest.mark.parametrize("isa", ["avx2", "base"])
def test_lesser_instruction_set_matches_reference(isa):
    native = crnn._core.machine()["isa"]
    if ORDER.index(isa) >= ORDER.index(native):
        pytest.skip(f"this machine's best kernels are {native}: the rest of the suite runs them")
    env = _child_env(isa)
    chosen = subprocess.run(
        [sys.executable, "-c", "import crnn; print(crnn._core.machine()['isa'])"],
        env=env, capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert chosen == isa, f"CRNN_ISA={isa} ran the {chosen} kernels"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *[str(TESTS / f) for f in FILES]],
        env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (
        f"under CRNN_ISA={isa}:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}")
    assert " passed" in run.stdout


@pytest.mark.parametrize("request_", ["avx1024", "AVX2", " avx2"])
def test_unknown_request_keeps_native_kernels_and_warns(request_):
    native = crnn._core.machine()["isa"]
    run = subprocess.run(
        [sys.executable, "-c", "import crnn; print(crnn._core.machine()['isa'])"],
        env=_child_env(request_), capture_output=True, text=True, timeout=120, check=True)
    assert run.stdout.strip() == native
    assert "RuntimeWarning" in run.stderr and f"CRNN_ISA={request_!r} ignored" in run.stderr, \
        run.stderr


@pytest.mark.parametrize("request_", ["avx512", "avx2", "base", "sse2", ""])
def test_known_request_does_not_warn(request_):
    run = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", "import crnn"],
        env=_child_env(request_), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "CRNN_ISA" not in run.stderr, run.stderr
