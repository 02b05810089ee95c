"""Memory safety and leaks (issue 7, item 3).

- ``make -C csrc sanitize``: the C core and its plain-C test programs (tests/c/test_crnn.c, 0.1's
  SimpleRNN API; tests/c/test_cells.c, the cells of 0.2) built with AddressSanitizer +
  UndefinedBehaviorSanitizer (any report fails; OpenBLAS-internal leak reports are suppressed by
  ``tests/c/lsan.supp``).
- ``make -C csrc tsan``: the same test programs under ThreadSanitizer (their threaded cases; the
  uninstrumented BLAS's own threads are suppressed by ``tests/c/tsan.supp``).
- ``make -C csrc valgrind``: the same test programs under valgrind memcheck
  (``CRNN_TEST_QUICK=1``: every test function, a part of each reference grid, fewer threaded
  calls; ~75 s for both).
- A Python workload under valgrind memcheck: CPython itself reports uninitialised-value noise
  under valgrind (its small-int cache, ``int.from_bytes`` of random seeds), so the test fails only
  on errors with a crnn frame (``crnn_*`` / ``crnn__*`` functions, ``__pyx_*`` wrappers, or the
  ``crnn/_core`` extension) in their stack. Leak checking of a whole interpreter is not meaningful
  (CPython does not free everything at exit); the RSS test below covers leaks instead.
- RSS: 100 000 forward calls of a small layer (plus functional, error-path, stateful and model
  calls) must not grow the resident set size after warm-up, measured via ``/proc/self/statm``.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from _helpers import REPO_ROOT

CSRC = os.path.join(REPO_ROOT, "csrc")


def _have_scipy_openblas():
    try:
        import scipy_openblas32  # noqa: F401  (only to learn whether make can find the BLAS)
        return True
    except ImportError:
        return False


#: The plain-C test programs (tests/c/) every make target below runs, each ending with
#: "N passed, M failed"; the sanitizers also run the thread pool's test (valgrind, which runs
#: one thread at a time, would miss its timing checks).
TEST_PROGRAMS = ("test_crnn", "test_cells")
SANITIZED_PROGRAMS = TEST_PROGRAMS + ("test_pool",)


def _assert_all_passed(out, programs=TEST_PROGRAMS):
    """Every test program ran to its summary line, and none failed."""
    summaries = re.findall(r"\b(\d+) passed, (\d+) failed", out)
    assert len(summaries) == len(programs), out[-3000:]
    assert all(int(failed) == 0 for _, failed in summaries), summaries


class _MakeRun:
    """``make -C csrc TARGET`` started in the background, in a private BUILD dir (never racing
    with other people's ``make -C csrc test``), its output merged into one temporary file."""

    def __init__(self, target):
        self.target = target
        self.build = os.path.join(REPO_ROOT, "csrc", "build", f"pytest-{target}-{os.getpid()}")
        self.out = tempfile.TemporaryFile(mode="w+")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(["make", "-C", CSRC, target, f"PYTHON={sys.executable}",
                                      f"BUILD={self.build}"], stdout=self.out,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def result(self, timeout):
        """(exit status, output), waiting until `timeout` seconds after the start at most."""
        try:
            rc = self.proc.wait(timeout=max(1.0, self.start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.close()
            pytest.fail(f"make {self.target} took more than {timeout} s")
        self.out.seek(0)
        return rc, self.out.read()

    def close(self):
        if self.proc.poll() is None:  # the whole group: make and the test program it runs
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.out.close()
        shutil.rmtree(self.build, ignore_errors=True)


@pytest.fixture(scope="module")
def make_runs():
    """The sanitizer and valgrind runs of the C tests, all started at once: each keeps one core
    busy for one to two minutes, so together they take about the time of the longest on two
    cores rather than the sum (4.5 minutes on a Zen 3 core)."""
    if shutil.which("make") is None or shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("make or a C compiler is not installed")
    if not _have_scipy_openblas():
        pytest.skip("scipy-openblas32 is not installed in this Python (the Makefile's BLAS)")
    targets = ["sanitize", "tsan"] + (["valgrind"] if shutil.which("valgrind") else [])
    runs = {t: _MakeRun(t) for t in targets}
    yield runs
    for run in runs.values():
        run.close()


def test_c_core_under_asan_ubsan(make_runs):
    rc, out = make_runs["sanitize"].result(timeout=300)
    assert rc == 0, f"make sanitize failed:\n{out[-6000:]}"
    assert "ERROR: AddressSanitizer" not in out and "runtime error:" not in out, out[-6000:]
    _assert_all_passed(out, SANITIZED_PROGRAMS)


def test_c_core_under_tsan(make_runs):
    # the C test's threaded cases: batch split, units split, pipeline, concurrent callers
    rc, out = make_runs["tsan"].result(timeout=300)
    if "unexpected memory mapping" in out:  # TSan's runtime and this kernel's ASLR layout
        pytest.skip("ThreadSanitizer cannot run under this kernel's address-space layout")
    assert rc == 0, f"make tsan failed:\n{out[-6000:]}"
    assert "WARNING: ThreadSanitizer" not in out, out[-6000:]
    _assert_all_passed(out, SANITIZED_PROGRAMS)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_c_core_under_valgrind(make_runs):
    rc, out = make_runs["valgrind"].result(timeout=400)
    assert rc == 0, f"make valgrind failed:\n{out[-6000:]}"
    _assert_all_passed(out)
    errors = re.findall(r"ERROR SUMMARY: (\d+) errors", out)
    assert errors == ["0"] * len(TEST_PROGRAMS), out[-6000:]
    leaks = re.findall(r"(?:definitely|indirectly) lost: ([\d,]+) bytes", out)
    assert all(n == "0" for n in leaks), out[-3000:]
    assert len(leaks) == 2 * len(TEST_PROGRAMS) or "All heap blocks were freed" in out \
        or "no leaks are possible" in out, out[-3000:]


_PY_WORKLOAD = """
import numpy as np, crnn
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (3, 5, 4)).astype(np.float32)
for dtype in (np.float32, np.float64):
    for direction in ("forward", "reverse", "bidirectional"):
        nd = 2 if direction == "bidirectional" else 1
        w = [[[rng.uniform(-.5, .5, (4, 6)).astype(dtype), rng.uniform(-.3, .3, (6, 6)).astype(dtype),
               rng.uniform(-.1, .1, 6).astype(dtype)] for _ in range(nd)],
             [[rng.uniform(-.5, .5, (6 * nd, 3)).astype(dtype), rng.uniform(-.3, .3, (3, 3)).astype(dtype),
               None] for _ in range(nd)]]
        h0 = [rng.uniform(-1, 1, (3, u)).astype(dtype) for u in (6, 3) for _ in range(nd)]
        crnn.simple_rnn_stack(x.astype(dtype)[:, ::-1], w, direction=direction, lengths=[5, 2, 0],
                              initial_state=h0, return_state=True, activation=["relu", "sigmoid"])
        crnn.simple_rnn_stack(x.astype(dtype), w, direction=direction, return_sequences=False)
crnn.set_num_threads(2)
big = rng.uniform(-1, 1, (64, 8, 16)).astype(np.float32)
crnn.simple_rnn(big, rng.uniform(-.3, .3, (16, 128)).astype(np.float32),
                rng.uniform(-.1, .1, (128, 128)).astype(np.float32))
crnn.set_num_threads(1)
m = crnn.Sequential([crnn.Embedding(10, 4, mask_zero=True),
                     crnn.Bidirectional(crnn.SimpleRNN(6, return_sequences=True)),
                     crnn.SimpleRNN(3), crnn.Dense(2, activation="softmax")])
ids = rng.integers(0, 10, (5, 7))
for _ in range(5):
    m.predict(ids)
s = crnn.SimpleRNN(4, stateful=True, batch_input_shape=(3, None, 4))
for _ in range(5):
    s(x[:, :1])
for bad in (np.zeros((3, 5, 7), np.float32), np.zeros((3, 0, 4), np.float32)):
    try:
        crnn.simple_rnn(bad, np.zeros((4, 6), np.float32), np.zeros((6, 6), np.float32))
    except ValueError:
        pass
print("workload ok")
"""


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_python_workload_under_valgrind():
    env = dict(os.environ, PYTHONMALLOC="malloc", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        ["valgrind", "--error-exitcode=0", "--leak-check=no", "--num-callers=40",
         f"--suppressions={os.path.join(REPO_ROOT, 'tests', 'c', 'valgrind.supp')}",
         sys.executable, "-c", _PY_WORKLOAD],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert "workload ok" in proc.stdout, proc.stderr[-5000:]
    # Split memcheck's report into error blocks; keep those with a crnn frame.
    blocks, cur = [], []
    for line in proc.stderr.splitlines():
        body = re.sub(r"^==\d+== ?", "", line)
        if not body.strip():
            if cur:
                blocks.append(cur)
            cur = []
        else:
            cur.append(body)
    if cur:
        blocks.append(cur)
    ours = [b for b in blocks if any(re.search(r"\bcrnn__?\w+|__pyx_|crnn/_core", ln) for ln in b[1:])
            and not b[0].startswith(("Memcheck", "Copyright", "Using", "Command", "HEAP", "ERROR"))]
    assert not ours, "memcheck errors in crnn code:\n\n" + "\n\n".join("\n".join(b) for b in ours[:5])


_RSS_CHILD = """
import os, numpy as np, crnn
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (2, 3, 4)).astype(np.float32)
k = rng.uniform(-.5, .5, (4, 5)).astype(np.float32)
r = rng.uniform(-.3, .3, (5, 5)).astype(np.float32)
lay = crnn.SimpleRNN(5, return_sequences=True, return_state=True)
lay.build((None, None, 4))
st = crnn.SimpleRNN(5, stateful=True, batch_input_shape=(2, None, 4))
model = crnn.Sequential([crnn.SimpleRNN(5, input_shape=(None, 4), return_sequences=True),
                         crnn.SimpleRNN(3), crnn.Dense(2)])
bad = np.zeros((2, 3, 7), np.float32)

def phase(n):
    for _ in range(n):
        lay(x)                          # the layer fast path: 100 000 calls in the main phase
    for _ in range(n // 5):
        crnn.simple_rnn(x, k, r)        # creates and frees a compiled handle per call
        st(x)                           # stateful: the kept state is replaced every call
        try:
            lay(bad)                    # error path: exception objects and messages
        except ValueError:
            pass
    for _ in range(n // 10):
        model.predict(x)                # fused two-layer run + Dense
        model(x)

phase(5000)                             # warm-up: caches, pymalloc arenas, handle caches
before = rss()
phase(100000)
after = rss()
print("RSS", before, after, flush=True)
"""


def test_no_rss_growth_over_100k_calls():
    """100 000 layer calls (plus 20 000 functional, stateful and failing calls and 10 000 model
    calls each) after a warm-up of 5 000: RSS may grow by at most 2 MiB.

    Slack: freed memory is not always returned to the OS (pymalloc keeps 256 KiB arenas with any
    live object; glibc keeps freed chunks below its trim threshold, 128 KiB by default, per arena,
    and each of crnn's worker threads may have one), so a few hundred KiB of drift is normal. A
    leak of just 21 bytes per call (less than one float32 output of this shape plus its array
    header) over the 100 000 main calls would already exceed 2 MiB.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_RSS_CHILD)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after = (int(v) for v in proc.stdout.split("RSS")[1].split())
    growth = after - before
    print(f"\nRSS before {before / 2**20:.1f} MiB, after 100k calls {after / 2**20:.1f} MiB, "
          f"growth {growth / 2**10:.0f} KiB")
    assert growth <= 2 * 2**20, f"RSS grew by {growth / 2**20:.2f} MiB over 100 000 calls"
