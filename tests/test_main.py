"""``python -m crnn``, the README's main job, run the ways a newcomer runs it.

- From the repository root: the tutorial checks pass (``--no-bench``: the timing part is for
  people, not for tests).
- From a source checkout whose core was built elsewhere: ``pip install . && python -m crnn``
  typed in the checkout puts the checkout's unbuilt ``crnn/`` first on ``sys.path``; the package
  must then take its modules from the installed copy instead of failing to import ``_core``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import crnn

from _helpers import REPO_ROOT


def _run(args, cwd, env_path=None):
    env = dict(os.environ)
    flags = []
    if env_path is not None:
        # -S: no site processing, so no editable-install finder maps `crnn` to this repository
        # whatever sys.path says; NumPy and the BLAS wheel come from site-packages by path.
        paths = sysconfig.get_paths()
        env["PYTHONPATH"] = os.pathsep.join([env_path, paths["purelib"], paths["platlib"]])
        flags = ["-S"]
    return subprocess.run([sys.executable, *flags, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_main_job_passes():
    proc = _run(["-m", "crnn", "--no-bench"], cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All checks passed" in proc.stdout


def test_unbuilt_checkout_defers_to_the_installed_copy(tmp_path):
    installed = os.path.dirname(os.path.dirname(os.path.abspath(crnn._core.__file__)))
    checkout = tmp_path / "checkout"
    # the package's sources without any compiled extension, as in a fresh clone
    shutil.copytree(os.path.join(REPO_ROOT, "crnn"), checkout / "crnn",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "include"))
    assert not [f for f in os.listdir(checkout / "crnn") if f.startswith("_core.") and
                f.endswith((".so", ".pyd"))]
    probe = ("import crnn, os; print(os.path.dirname(crnn._core.__file__)); "
             "print(crnn.SimpleRNN(3, input_shape=(2, 10), seed=0)(__import__('numpy').zeros("
             "(1, 2, 10), 'float32')).shape)")
    proc = _run(["-c", probe], cwd=str(checkout), env_path=installed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    core_dir, shape = proc.stdout.split("\n")[:2]
    assert os.path.samefile(core_dir, os.path.join(installed, "crnn"))
    assert shape == "(1, 3)"
    proc = _run(["-m", "crnn", "--no-bench"], cwd=str(checkout), env_path=installed)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All checks passed" in proc.stdout
