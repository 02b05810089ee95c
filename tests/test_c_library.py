"""The standalone C library (csrc/Makefile): libcrnn.a, libcrnn.so and the plain-C test programs
tests/c/test_crnn.c (0.1's SimpleRNN API) and tests/c/test_cells.c (the cells of 0.2), built
and run with `make test` so that CI runs them.

The build goes to a temporary directory (BUILD=...), never into the source tree, and uses the
scipy-openblas32 wheel of the Python running the tests (PYTHON=...), which crnn depends on.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(REPO_ROOT, "csrc")


def _c_compiler():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(cc.split()[0]) or shutil.which("cc")


pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="the standalone C build uses make and POSIX"),
    pytest.mark.skipif(shutil.which("make") is None, reason="no `make` on PATH"),
    pytest.mark.skipif(_c_compiler() is None, reason="no C compiler on PATH"),
    pytest.mark.skipif(not os.path.isfile(os.path.join(CSRC, "Makefile")),
                       reason="csrc/Makefile not present (installed package without sources)"),
]


def _make(target, build_dir):
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    return subprocess.run(["make", "-C", CSRC, target, f"BUILD={build_dir}",
                           f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    """libcrnn.a and libcrnn.so, built once for this module."""
    path = tmp_path_factory.mktemp("crnn-c-build")
    proc = _make("lib", path)
    assert proc.returncode == 0, (f"make lib failed (exit {proc.returncode}):\n"
                                  f"{(proc.stdout + proc.stderr)[-6000:]}")
    for lib in ("libcrnn.a", "libcrnn.so"):
        assert (path / lib).is_file(), f"{lib} not built"
    return path


TEST_PROGRAMS = ("test_crnn", "test_cells")


def test_make_test_builds_and_passes(build_dir):
    proc = _make("test", build_dir)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make test failed (exit {proc.returncode}):\n{out[-6000:]}"
    # Each program runs against the static and the shared library, then the pool's test
    # (internals: static only), each announced by "== <path>" and ending with "N passed,
    # 0 failed"; the output ends with the last of these lines.
    ran = re.findall(r"^== (\S+)", proc.stdout, re.M)
    programs = [name + suffix for name in TEST_PROGRAMS for suffix in ("", "_shared")]
    assert [os.path.basename(p) for p in ran] == programs + ["test_pool"], ran
    summaries = re.findall(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
    assert len(summaries) == len(programs) + 1, \
        f"expected {len(programs) + 1} test summaries in:\n{proc.stdout[-3000:]}"
    for passed, failed in summaries[:-1]:
        assert int(failed) == 0 and int(passed) > 1000, summaries
    assert int(summaries[-1][1]) == 0 and int(summaries[-1][0]) >= 40, summaries
    ours = [line for line in proc.stdout.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]
    assert ours[-1] == f"{summaries[-1][0]} passed, 0 failed", ours[-5:]


def test_shared_library_exports_only_the_public_api(build_dir):
    """libcrnn.so exports exactly the CRNN_API functions of crnn.h (internals stay hidden)."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no `nm` on PATH")
    syms = subprocess.run([nm, "-D", "--defined-only", str(build_dir / "libcrnn.so")],
                          capture_output=True, text=True, check=True).stdout
    exported = {line.split()[-1] for line in syms.splitlines()
                if line.split() and line.split()[-2] in ("T", "W") and "crnn" in line}
    with open(os.path.join(CSRC, "include", "crnn.h")) as f:
        header = f.read()
    declared = set(re.findall(r"CRNN_API\s+[^;(]*?\b(crnn_\w+)\s*\(", header))
    assert declared, "no CRNN_API declarations found in crnn.h"
    assert exported == declared, (f"exported but not in crnn.h: {sorted(exported - declared)}; "
                                  f"in crnn.h but not exported: {sorted(declared - exported)}")


def test_blas_integer_limits_are_chunked_or_refused(build_dir):
    # tests/c/test_blas_limits.c against the core rebuilt with a BLAS integer limit of 64, so
    # the chunking and the CRNN_ERR_TOO_LARGE paths run with small arrays.
    proc = _make("test-limits", build_dir)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make test-limits failed (exit {proc.returncode}):\n{out[-6000:]}"
    assert re.search(r"^\d+ passed, 0 failed$", out, re.M), out[-2000:]
