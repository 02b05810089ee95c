"""``python -m crnn``, the README's main job, run the ways a newcomer runs it.

- From the repository root: the tutorial checks pass (``--no-bench``: the timing part is for
  people, not for tests).
- ``python -m crnn predict MODEL INPUT OUTPUT`` (crnn/_dask_cli.py, with the dask extra): a
  ``.npy`` file or a Zarr array scored chunk by chunk, bitwise as local ``model.predict``, never
  held whole in memory, written under a temporary name renamed only on success.
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

import numpy as np
import pytest

import crnn

from _helpers import REPO_ROOT, describe


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


def test_seed_out_of_range_is_a_usage_error():
    for seed in ("-1", str(2**32 - 2)):
        proc = _run(["-m", "crnn", "--no-bench", "--seed", seed], cwd=REPO_ROOT)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert f"--seed: got {seed}, expected an int in [0, {2**32 - 3}]" in proc.stderr
        assert "Traceback" not in proc.stderr


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


# --------------------------------------------------------------------------- python -m crnn predict
def _predict(*args, cwd):
    return subprocess.run([sys.executable, "-m", "crnn", "predict", *map(str, args)], cwd=str(cwd),
                          capture_output=True, text=True, timeout=300)


def _oracle(model, x, batch_size):
    """Local predict at one crnn thread, the CLI's default per Dask thread."""
    saved = crnn.get_num_threads()
    crnn.set_num_threads(1)
    try:
        return model.predict(x, batch_size=batch_size, verbose=0)
    finally:
        crnn.set_num_threads(saved)


def test_predict_npy(tmp_path, rng):
    pytest.importorskip("dask.array")
    model = crnn.Sequential([crnn.Embedding(30, 6, mask_zero=True, seed=1),
                             crnn.SimpleRNN(7, seed=2), crnn.Dense(2, seed=3)])
    model.save(tmp_path / "m.crnn")
    ids = rng.integers(0, 30, (250, 11))
    np.save(tmp_path / "x.npy", ids)
    proc = _predict("m.crnn", "x.npy", "y.npy", "--batch-size", "16", "--chunk-size", "40",
                    cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert "100% Completed" in proc.stdout  # Dask's progress bar
    assert "wrote y.npy: shape (250, 2), float32, 250 sequences" in proc.stdout
    assert np.array_equal(np.load(tmp_path / "y.npy"), _oracle(model, ids, 16))
    assert sorted(os.listdir(tmp_path)) == ["m.crnn", "x.npy", "y.npy"]  # no temporary left


def test_predict_zarr(tmp_path, rng, monkeypatch):
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask.array")
    model = crnn.Sequential([crnn.SimpleRNN(5, return_sequences=True, input_shape=(None, 3),
                                            dtype="float64", seed=1), crnn.Dense(2, seed=2,
                                                                                 dtype="float64")])
    model.save(tmp_path / "m.crnn")
    x = rng.standard_normal((130, 8, 3))
    z = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=x.shape, chunks=(30, 4, 3),
                        dtype=x.dtype)
    z[:] = x
    proc = _predict("m.crnn", "x.zarr", "y.zarr", "--quiet", "--chunk-size", "64", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout == ""
    y = zarr.open_array(str(tmp_path / "y.zarr"), mode="r")
    assert (y.shape, y.dtype, y.chunks) == ((130, 8, 2), np.float64, (64, 8, 2))
    assert np.array_equal(y[:], _oracle(model, x, 32))
    assert sorted(os.listdir(tmp_path)) == ["m.crnn", "x.zarr", "y.zarr"]
    # --overwrite replaces the directory (in-process this time: quicker)
    from crnn._dask_cli import main as predict_main
    monkeypatch.chdir(tmp_path)
    assert predict_main(["m.crnn", "x.zarr", "y.zarr", "--quiet", "--overwrite",
                         "--batch-size", "16", "--chunk-size", "48"]) == 0
    y = zarr.open_array(str(tmp_path / "y.zarr"), mode="r")
    assert y.chunks == (48, 8, 2) and np.array_equal(y[:], _oracle(model, x, 16))
    assert sorted(os.listdir(tmp_path)) == ["m.crnn", "x.zarr", "y.zarr"]
    # ... but not a file that is no earlier output, nor one a symlink at OUTPUT points to
    (tmp_path / "f.zarr").write_text("not zarr")
    os.symlink(tmp_path / "f.zarr", tmp_path / "l.zarr")
    for out in ("f.zarr", "l.zarr"):
        assert predict_main(["m.crnn", "x.zarr", out, "--quiet", "--overwrite"]) == 1
    assert (tmp_path / "f.zarr").read_text() == "not zarr"
    assert sorted(os.listdir(tmp_path)) == ["f.zarr", "l.zarr", "m.crnn", "x.zarr", "y.zarr"]


def test_predict_failure_writes_nothing(tmp_path, rng):
    pytest.importorskip("dask.array")
    model = crnn.Sequential([crnn.Embedding(30, 6, mask_zero=True, seed=1), crnn.SimpleRNN(7)])
    model.save(tmp_path / "m.crnn")
    ids = rng.integers(0, 30, (200, 5))
    ids[130, 2] = 31  # outside the vocabulary, in the chunk of rows 128:192
    np.save(tmp_path / "x.npy", ids)
    np.save(tmp_path / "y.npy", np.zeros(3))  # an earlier result, kept when the run fails
    proc = _predict("m.crnn", "x.npy", "y.npy", "--overwrite", "--chunk-size", "64",
                    cwd=tmp_path)
    assert proc.returncode == 1, describe(proc)
    assert "InvalidIndexError: x: chunk 2 (rows 128:192): x: got index" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["m.crnn", "x.npy", "y.npy"]
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.zeros(3))


def test_predict_argument_errors(tmp_path, monkeypatch, capsys):
    pytest.importorskip("dask.array")
    from crnn._dask_cli import main as predict_main  # in-process: quicker than a subprocess each
    model = crnn.Sequential([crnn.SimpleRNN(2, input_shape=(None, 3))])
    model.save(tmp_path / "m.crnn")
    np.save(tmp_path / "x.npy", np.zeros((4, 2, 3)))
    np.save(tmp_path / "x5.npy", np.zeros((4, 2, 5)))
    np.save(tmp_path / "old.npy", np.zeros(1))
    (tmp_path / "d.npy").mkdir()
    (tmp_path / "d.npy" / "keep").write_text("kept")
    (tmp_path / "thesis.tex").write_text("kept")
    os.symlink(tmp_path / "thesis.tex", tmp_path / "t.npy")
    monkeypatch.chdir(tmp_path)
    cases = [
        (["x.npy", "y.zarr"], "OUTPUT: got 'y.zarr', expected a .npy file, the format of INPUT"),
        (["nope.npy", "y.npy"], "INPUT: got 'nope.npy', expected an existing .npy file"),
        (["x.npy", "old.npy"], "OUTPUT: 'old.npy' exists (pass --overwrite to replace it)"),
        (["x.npy", "x.npy", "--overwrite"],
         "OUTPUT: got 'x.npy', which is INPUT ('x.npy'), holds it or lies inside it"),
        (["x.npy", "m.crnn", "--overwrite"], "OUTPUT: got 'm.crnn', expected a .npy file"),
        (["x.npy", os.path.join("no", "y.npy")],
         f"OUTPUT: got {os.path.join('no', 'y.npy')!r}, whose directory"),
        (["x.npy", "y.npy/"], "OUTPUT: got 'y.npy/', expected the path of a .npy file"),
        (["x.npy", "d.npy", "--overwrite"],
         "OUTPUT: got 'd.npy', which exists and is not an earlier output (a .npy file)"),
        (["x.npy", "t.npy", "--overwrite"],
         "OUTPUT: got 't.npy', which exists and is not an earlier output (a .npy file)"),
        (["x5.npy", "y.npy"], "x: got shape (4, 2, 5) float64, which the model cannot take: "
                              "x: got input_dim 5"),
    ]
    for args, message in cases:
        assert predict_main(["m.crnn", *args, "--quiet"]) == 1
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["m.crnn", "x.npy", "y.npy", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "--batch-size: got 0, expected an int >= 1" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["d.npy", "m.crnn", "old.npy", "t.npy", "thesis.tex",
                                            "x.npy", "x5.npy"]
    assert (tmp_path / "d.npy" / "keep").read_text() == "kept"
    assert (tmp_path / "thesis.tex").read_text() == "kept"


def test_predict_never_replaces_what_holds_its_input_or_model(tmp_path, monkeypatch, capsys):
    """--overwrite removes what stands at OUTPUT (a whole directory for a Zarr array): never
    INPUT or MODEL, a directory holding them, something inside them, or any directory but an
    earlier Zarr output (it took the working directory, the input's directory, the model file and
    a chunk directory inside the input)."""
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask.array")
    from crnn._dask_cli import main as predict_main
    data = tmp_path / "data"
    data.mkdir()
    crnn.Sequential([crnn.SimpleRNN(2, input_shape=(None, 3))]).save(data / "m.crnn")
    zarr.open_array(str(data / "x.zarr"), mode="w", shape=(4, 2, 3), chunks=(2, 2, 3),
                    dtype="f4")[:] = 1.0
    (data / "notes").mkdir()
    monkeypatch.chdir(data)
    cases = [("data", "which is INPUT"), (".", "which is INPUT"),
             (os.path.join("x.zarr", "c"), "which is INPUT"), ("m.crnn", "which is MODEL"),
             (str(tmp_path / "data" / ".." / "data"), "which is INPUT"),
             ("notes", "is not an earlier output")]
    for out, message in cases:
        if out == "data":
            monkeypatch.chdir(tmp_path)
            args = [os.path.join("data", "m.crnn"), os.path.join("data", "x.zarr"), out]
        else:
            monkeypatch.chdir(data)
            args = ["m.crnn", "x.zarr", out]
        assert predict_main([*args, "--quiet", "--overwrite"]) == 1, out
        assert message in capsys.readouterr().err, out
    assert sorted(os.listdir(data)) == ["m.crnn", "notes", "x.zarr"]
    assert np.array_equal(zarr.open_array(str(data / "x.zarr"), mode="r")[:], np.ones((4, 2, 3)))
    # a Zarr group of other arrays, and a folder with a file named like Zarr's metadata
    group = tmp_path / "results.zarr"
    zarr.open_group(str(group), mode="w")
    zarr.open_array(str(group / "run1"), mode="w", shape=(2,), dtype="f4")[:] = 7.0
    fake = tmp_path / "proj"
    fake.mkdir()
    (fake / "zarr.json").write_text("{}")
    (fake / "important.txt").write_text("kept")
    fake2 = tmp_path / "p.zarr"  # an empty .zarray, and a FIFO named zarr.json (opening it
    fake2.mkdir()                # would block)
    (fake2 / ".zarray").write_text("")
    (fake2 / "notes.txt").write_text("kept")
    if hasattr(os, "mkfifo"):
        os.mkfifo(fake2 / "zarr.json")
    # INPUT through a symlink then "..": the OS reads (and the check protects) the link's
    # target's sibling, never the x.zarr the string would cancel to
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    zarr.open_array(str(other / "x.zarr"), mode="w", shape=(6, 2, 3), dtype="f4")[:] = 2.0
    os.symlink(other / "sub", data / "link")
    monkeypatch.chdir(data)
    for out in (str(group), str(fake), str(fake2)):
        assert predict_main(["m.crnn", "x.zarr", out, "--quiet", "--overwrite"]) == 1, out
        assert "is not an earlier output (a directory holding a Zarr array)" in \
            capsys.readouterr().err, out
    assert zarr.open_array(str(group / "run1"), mode="r")[:].tolist() == [7.0, 7.0]
    assert (fake / "important.txt").read_text() == "kept"
    assert (fake2 / "notes.txt").read_text() == "kept"
    assert predict_main(["m.crnn", os.path.join("link", "..", "x.zarr"), "x.zarr", "--quiet",
                         "--overwrite"]) == 0  # reads other/x.zarr, writes data/x.zarr
    assert zarr.open_array(str(other / "x.zarr"), mode="r")[:].tolist() == \
        np.full((6, 2, 3), 2.0).tolist()
    assert zarr.open_array(str(data / "x.zarr"), mode="r").shape == (6, 2)
    # OUTPUT a symlink to an earlier output: the output it points at is replaced
    assert predict_main(["m.crnn", str(other / "x.zarr"), str(tmp_path / "y.zarr"),
                         "--quiet"]) == 0
    os.symlink(tmp_path / "y.zarr", tmp_path / "ylink.zarr")
    assert predict_main(["m.crnn", str(other / "x.zarr"), str(tmp_path / "ylink.zarr"),
                         "--quiet", "--overwrite", "--batch-size", "2"]) == 0
    assert zarr.open_array(str(tmp_path / "ylink.zarr"), mode="r").shape == (6, 2)
    crnn.load_model(data / "m.crnn")


def test_predict_without_dask_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['dask'] = None\n"  # as if Dask were not installed
            "from crnn.__main__ import main\n"
            "sys.exit(main(['predict', 'm.crnn', 'x.npy', 'y.npy']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, describe(proc)
    assert "needs Dask: pip install 'crnn[dask]'" in proc.stderr


def test_predict_never_holds_the_whole_input(tmp_path):
    """A 256 MiB input scored in 8 MiB chunks: the process's peak RSS stays well below it."""
    pytest.importorskip("dask.array")
    model = crnn.Sequential([crnn.SimpleRNN(4, input_shape=(None, 64), seed=1)])
    model.save(tmp_path / "m.crnn")
    n = 16384
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                  shape=(n, 64, 64))
    block = np.random.default_rng(0).standard_normal((1024, 64, 64), dtype=np.float32)
    for s in range(0, n, 1024):
        x[s:s + 1024] = block
    x.flush()
    del x
    size_mib = n * 64 * 64 * 4 / 2**20
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.run([sys.executable, '-m', 'crnn', 'predict', 'm.crnn', 'x.npy', "
            "'y.npy', '--quiet', '--chunk-size', '512'])\n"
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=300)
    rc, peak_kib = proc.stdout.split()
    assert rc == "0", describe(proc)
    # measured ~120 MiB (interpreter, NumPy, Dask and crnn ~70 MiB, the chunks in flight);
    # reading the whole input would take at least 256 MiB more
    assert int(peak_kib) / 1024 < 0.75 * size_mib, describe(proc)
    assert np.load(tmp_path / "y.npy", mmap_mode="r").shape == (n, 4)
