"""The cache sizes the core plans with, and the environment variables that set them.

The core reads the per-core L1 and L2 data cache sizes once (csrc/cpu.c): CRNN_L1_BYTES /
CRNN_L2_BYTES where they hold a usable size, else the OS's. They size the panel kernel's blocks
of k and choose the threading plans, so the rest of the suite covers the paths of this machine's
sizes only; here the cell grid, the randomised differential test and the threading tests run
again, in a child process, under the sizes of other machines, against the same NumPy reference
and tolerances. Each child reads the variables at import, so every case is its own process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import crnn

TESTS = Path(__file__).resolve().parent
FILES = ["test_rnn_cells.py", "test_differential.py", "test_parallel.py"]


def _env(**sizes: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CRNN_L1_BYTES", "CRNN_L2_BYTES")}
    env.update(sizes)
    return env


def _child(code: str, **sizes: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=_env(**sizes), capture_output=True,
                          text=True, timeout=120, check=True)


def _machine(**sizes: str) -> dict:
    out = _child("import json, crnn; print(json.dumps(crnn._core.machine()))", **sizes)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sizes_come_from_the_os_without_the_variables():
    m = _machine()
    assert m["l1_from"] in ("os", "default") and m["l2_from"] in ("os", "default")
    here = crnn._core.machine()
    if "CRNN_L1_BYTES" not in os.environ and "CRNN_L2_BYTES" not in os.environ:
        assert (m["l1_bytes"], m["l2_bytes"]) == (here["l1_bytes"], here["l2_bytes"])


@pytest.mark.parametrize("l1, l2, want", [
    ("49152", "2097152", (49152, 2097152)),
    ("48K", "2M", (49152, 2097152)),
    ("48kib", "2MiB", (49152, 2097152)),
    ("64KB", "1024m", (65536, 1 << 30)),
    ("8K", "64K", (8192, 65536)),      # the smallest sizes taken
    ("16M", "1024M", (1 << 24, 1 << 30)),  # the largest
])
def test_variables_set_the_sizes(l1, l2, want):
    m = _machine(CRNN_L1_BYTES=l1, CRNN_L2_BYTES=l2)
    assert (m["l1_bytes"], m["l2_bytes"]) == want
    assert m["l1_from"] == m["l2_from"] == "env"


@pytest.mark.parametrize("name, value", [
    ("CRNN_L1_BYTES", "abc"), ("CRNN_L1_BYTES", "4K"), ("CRNN_L1_BYTES", "17M"),
    ("CRNN_L1_BYTES", "-32768"), ("CRNN_L1_BYTES", "32 K"), ("CRNN_L1_BYTES", "32G"),
    ("CRNN_L2_BYTES", "1K"), ("CRNN_L2_BYTES", "2M!"), ("CRNN_L2_BYTES", "99999999999999999999"),
    ("CRNN_L2_BYTES", "0x100000"),
])
def test_unusable_values_warn_and_leave_the_os_sizes(name, value):
    base = _machine()
    code = ("import json, warnings\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import crnn\n"
            "print(json.dumps([str(x.message) for x in w if x.category is RuntimeWarning]))\n"
            "print(json.dumps(crnn._core.machine()))")
    out = _child(code, **{name: value}).stdout.strip().splitlines()
    warned, m = json.loads(out[-2]), json.loads(out[-1])
    level = "l1" if name == "CRNN_L1_BYTES" else "l2"
    assert m[f"{level}_bytes"] == base[f"{level}_bytes"]
    assert m[f"{level}_from"] == base[f"{level}_from"]
    assert len(warned) == 1 and name in warned[0] and repr(value) in warned[0], warned
    assert "expected a size in bytes" in warned[0]


def test_an_empty_variable_counts_as_unset():
    out = _child("import warnings; warnings.simplefilter('error'); import crnn; "
                 "print(crnn._core.machine()['l1_from'])", CRNN_L1_BYTES="")
    assert out.stdout.strip() in ("os", "default")


# The plans follow the sizes (csrc/rnn.c, crnn__plan): a batch-1 layer splits its units where its
# recurrent weights fill two L1s, and pipelines otherwise; a batch of 8 (4 rows a thread, within
# the rows up to which any kernels do so) splits its units where its weights outgrow L2, and its
# rows otherwise.
PLAN_CODE = """
import json, numpy as np, crnn
rng = np.random.default_rng(0)
def plan(cell, units, batch, steps=64, din=16):
    g = {"simple": 1, "lstm": 4, "gru": 3}[cell]
    w = [rng.uniform(-0.1, 0.1, (din, g * units)).astype("f4"),
         rng.uniform(-0.1, 0.1, (units, g * units)).astype("f4"),
         np.zeros(g * units, "f4")]
    h = crnn._core.RNN([[w]], cell=cell, dtype="float32")
    crnn.set_num_threads(2)
    return list(h.plan(batch, steps))
print(json.dumps([plan("simple", 128, 1), plan("lstm", 256, 8)]))
"""


@pytest.mark.parametrize("l1, l2, want", [
    ("16K", "512K", [["units", 2], ["units", 2]]),     # 64 KiB >= 2 x 16 KiB; 1 MiB >= 512 KiB
    ("64K", "2M", [["pipeline", 2], ["batch", 2]]),    # 64 KiB < 2 x 64 KiB; 1 MiB < 2 MiB
])
def test_plans_follow_the_sizes(l1, l2, want):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the units split and the pipeline need two CPUs")
    out = _child(PLAN_CODE, CRNN_L1_BYTES=l1, CRNN_L2_BYTES=l2)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == want


# Other machines' caches: a small L1 and L2 (blocks of k of 16 rows with AVX2; most layers split
# their units or stream their weights), with the threading tests too; and a 2-core Xeon's 48 KiB
# and 2 MiB (layers the small sizes split stay whole), the cell grid and differential test only.
@pytest.mark.parametrize("l1, l2, files", [("16K", "256K", FILES), ("48K", "2M", FILES[:2])],
                         ids=["small", "xeon"])
def test_other_cache_sizes_match_reference(l1, l2, files):
    here = crnn._core.machine()
    env = _env(CRNN_L1_BYTES=l1, CRNN_L2_BYTES=l2)
    m = _machine(CRNN_L1_BYTES=l1, CRNN_L2_BYTES=l2)
    if (m["l1_bytes"], m["l2_bytes"]) == (here["l1_bytes"], here["l2_bytes"]):
        pytest.skip("these are this machine's own sizes: the rest of the suite runs them")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *[str(TESTS / f) for f in files]],
        env=env, capture_output=True, text=True, timeout=900, cwd=str(TESTS.parent))
    tail = "\n".join(run.stdout.strip().splitlines()[-25:])
    assert run.returncode == 0, f"CRNN_L1_BYTES={l1} CRNN_L2_BYTES={l2}:\n{tail}"
    assert " passed" in tail, tail
