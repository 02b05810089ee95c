"""The CPU count the core plans with, and the environment variable that sets it.

The core reads it once (csrc/parallel.c, crnn__cpu_count): CRNN_CPUS where it holds a usable
count, else the CPUs online. The units split and the pipeline never run more threads than that,
so on a 2-CPU machine the rest of the suite splits a layer's units in two slices at most; here
the cell grid and the randomised differential test run again, in a child process, planning for 4
CPUs, so units splits of 3 and 4 slices (each slice's own workspace regions, its c state, the
hand-off of h between more threads than cores) are compared with the same NumPy reference and
tolerances. Each child reads the variable at import, so every case is its own process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _env(value=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CRNN_CPUS"}
    if value is not None:
        env["CRNN_CPUS"] = value
    return env


def _child(code: str, value=None) -> list:
    out = subprocess.run([sys.executable, "-c", code], env=_env(value), capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()


REPORT = ("import json, warnings\n"
          "with warnings.catch_warnings(record=True) as w:\n"
          "    warnings.simplefilter('always')\n"
          "    import crnn\n"
          "print(json.dumps([str(x.message) for x in w if x.category is RuntimeWarning]))\n"
          "m = crnn._core.machine()\n"
          "print(json.dumps([m['cpus'], m['cpus_from'], crnn.get_num_threads()]))")


def _report(value=None):
    lines = _child(REPORT, value)
    return json.loads(lines[-2]), json.loads(lines[-1])


def _os_cpus() -> int:
    return max(1, min(os.sysconf("SC_NPROCESSORS_ONLN"), 65))


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def test_the_count_comes_from_the_os_without_the_variable():
    warned, (cpus, source, threads) = _report()
    assert warned == []
    assert (cpus, source) == (_os_cpus(), "os")
    assert threads == _affinity()  # the default thread setting: the CPUs this process may use


@pytest.mark.parametrize("value, want", [("1", 1), ("6", 6), ("65", 65), ("007", 7)])
def test_the_variable_sets_the_count_and_the_default_threads(value, want):
    warned, (cpus, source, threads) = _report(value)
    assert warned == []
    assert (cpus, source, threads) == (want, "env", want)


@pytest.mark.parametrize("value", ["0", "66", "-2", "abc", "4 ", " 4", "4.0", "0x4", "+4",
                                   "99999999999999999999"])
def test_unusable_values_warn_and_leave_the_os_count(value):
    warned, (cpus, source, threads) = _report(value)
    assert (cpus, source, threads) == (_os_cpus(), "os", _affinity())
    assert len(warned) == 1 and "CRNN_CPUS" in warned[0] and repr(value) in warned[0], warned
    assert "expected a count of CPUs from 1 to 65" in warned[0]


def test_an_empty_variable_counts_as_unset():
    warned, (cpus, source, _) = _report("")
    assert warned == [] and (cpus, source) == (_os_cpus(), "os")


# A batch-1 LSTM of 256 units (1 MiB of recurrent weights) splits its units, a slice per thread
# up to one per 64 units: over as many threads as the count allows.
PLAN_CODE = """
import json, numpy as np, crnn
rng = np.random.default_rng(0)
w = [rng.uniform(-0.1, 0.1, (16, 4 * 256)).astype("f4"),
     rng.uniform(-0.1, 0.1, (256, 4 * 256)).astype("f4"), np.zeros(4 * 256, "f4")]
h = crnn._core.RNN([[w]], cell="lstm", dtype="float32")
crnn.set_num_threads(8)
print(json.dumps(list(h.plan(1, 64))))
"""


@pytest.mark.parametrize("value, want", [("4", ["units", 4]), ("3", ["units", 3]),
                                         ("1", ["serial", 1])])
def test_the_units_split_uses_at_most_the_count(value, want):
    assert json.loads(_child(PLAN_CODE, value)[-1]) == want


def test_more_slices_than_cores_match_reference():
    """The cell grid and the differential test (thread settings 1-4), planning for 4 CPUs."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(TESTS / "test_rnn_cells.py"), str(TESTS / "test_differential.py")],
        env=_env("4"), capture_output=True, text=True, timeout=900, cwd=str(TESTS.parent))
    tail = "\n".join(run.stdout.strip().splitlines()[-25:])
    assert run.returncode == 0, f"CRNN_CPUS=4:\n{tail}"
    assert " passed" in tail, tail
