"""Hostile model files (issue 7, item 5): the loaders never trust a file.

``crnn.load_model`` documents ``ValueError`` (bad content) and ``OSError`` (unreadable file);
``crnn.load_onnx`` documents ``OnnxError`` (a ``ValueError``); ``crnn.load_keras`` documents
``KerasConversionError`` (a ``ValueError``) and needs h5py. Every hostile file here must give one
of those, quickly, without executing anything from the file (pickle payloads that would create a
marker file must not create it) and without exhausting memory: each batch runs in a fresh
interpreter under ``RLIMIT_AS`` = 4 GiB, so a loader that tried to allocate what a file claims
would fail with MemoryError (counted as a failure) instead of eating the machine.

Fuzzing: hypothesis mutates the bytes of valid files (bit flips, byte overwrites, insertions,
deletions, truncation, splices of the two ZIP members) for a bounded number of examples in a
subprocess with a time budget (~10 s per loader); the only accepted outcomes are a loaded model
or the documented exceptions.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import crnn

from _helpers import REPO_ROOT
from _onnx_helpers import onnx_model

MEM_LIMIT = 4 * 2**30


def _child(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + os.path.join(REPO_ROOT, "tests") + os.pathsep \
        + env.get("PYTHONPATH", "")
    env["OPENBLAS_NUM_THREADS"] = "1"
    prelude = ("import resource, faulthandler\nfaulthandler.enable()\n"
               f"resource.setrlimit(resource.RLIMIT_AS, ({MEM_LIMIT}, {MEM_LIMIT}))\n")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)


# ---------------------------------------------------------------------------------------------
# Building valid and hostile .crnn files
# ---------------------------------------------------------------------------------------------
def _valid_model():
    # fixed names and seeds: the same bytes in every process
    m = crnn.Sequential([crnn.Embedding(20, 4, mask_zero=True, name="emb", seed=1),
                         crnn.Bidirectional(crnn.SimpleRNN(3, return_sequences=True, seed=2,
                                                           name="rnn1"), name="bi"),
                         crnn.SimpleRNN(5, name="rnn2", seed=3),
                         crnn.Dense(2, activation="softmax", name="out", seed=4)], name="model")
    m.build((None, 7))
    return m


def valid_bytes() -> bytes:
    buf = io.BytesIO()
    _valid_model().save(buf)
    return buf.getvalue()


def _parts(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("config.json")), zf.read("weights.npz")


def _zip(members, compression=zipfile.ZIP_STORED) -> bytes:
    import warnings
    warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # on purpose
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return b.getvalue()


def _npz(arrays) -> bytes:
    """An .npz from (member name, raw .npy bytes) pairs."""
    return _zip([(n, d) for n, d in arrays])


def _npz_members(npz: bytes):
    with zipfile.ZipFile(io.BytesIO(npz)) as z:
        return [(n, z.read(n)) for n in z.namelist()]


def _npy(arr) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array(b, np.asarray(arr), allow_pickle=True)
    return b.getvalue()


def _npy_header(shape, descr="<f4", fortran=False) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return b.getvalue()


class _Payload:
    """Unpickling this creates the marker file (what a malicious model would do)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _replace_member(npz: bytes, index: int, data: bytes) -> bytes:
    members = _npz_members(npz)
    members[index] = (members[index][0], data)
    return _npz(members)


def hostile_files(marker: str):
    """name -> bytes of a hostile .crnn file."""
    good = valid_bytes()
    cfg, npz = _parts(good)
    cfg_text = json.dumps(cfg)
    members = _npz_members(npz)
    first_name, first_npy = members[0]
    arr0 = np.load(io.BytesIO(first_npy), allow_pickle=False)
    out = {}

    # truncations and junk
    for cut in (0, 1, 4, 22, 100, len(good) // 3, len(good) // 2, len(good) - 22, len(good) - 1):
        out[f"truncated_{cut}"] = good[:cut]
    out["random_bytes"] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    out["appended_junk"] = good + b"\0" * 1000
    out["not_zip_json"] = cfg_text.encode()

    # archive structure
    out["path_traversal_member"] = _zip([("config.json", cfg_text), ("weights.npz", npz),
                                         ("../../evil.txt", "x")])
    out["absolute_member"] = _zip([("/tmp/crnn-evil.txt", "x"), ("config.json", cfg_text),
                                   ("weights.npz", npz)])
    out["traversal_instead_of_config"] = _zip([("../config.json", cfg_text), ("weights.npz", npz)])
    out["duplicate_member"] = _zip([("config.json", cfg_text), ("config.json", cfg_text),
                                    ("weights.npz", npz)])
    out["missing_weights"] = _zip([("config.json", cfg_text)])
    out["npz_traversal_member"] = _zip([("config.json", cfg_text),
                                        ("weights.npz", _npz(members + [("../x.npy", first_npy)]))])
    out["npz_extra_member"] = _zip([("config.json", cfg_text),
                                    ("weights.npz", _npz(members + [("extra.npy", first_npy)]))])
    out["npz_not_zip"] = _zip([("config.json", cfg_text), ("weights.npz", b"\x93NUMPY" + b"\0" * 50)])

    # pickle payloads: an object-dtype .npy, a raw pickle in place of the .npy, a pickled npz
    payload = pickle.dumps(_Payload(marker), protocol=2)
    obj = np.empty(arr0.shape, dtype=object)
    obj.flat[0] = _Payload(marker)
    out["pickle_object_npy"] = _zip([("config.json", cfg_text),
                                     ("weights.npz", _replace_member(npz, 0, _npy(obj)))])
    out["pickle_raw_in_npy"] = _zip([("config.json", cfg_text),
                                     ("weights.npz", _replace_member(npz, 0, payload))])
    out["pickle_header_O_descr"] = _zip([("config.json", cfg_text), ("weights.npz", _replace_member(
        npz, 0, _npy_header(arr0.shape, "|O") + payload))])
    out["pickle_as_weights"] = _zip([("config.json", cfg_text), ("weights.npz", payload)])
    out["pickle_as_file"] = payload
    out["pickle_as_config"] = _zip([("config.json", payload), ("weights.npz", npz)])

    # wrong shapes / dtypes / headers inside the npz
    for name, data in {
        "npy_wrong_shape": _npy(np.zeros((arr0.shape[0] + 1,) + arr0.shape[1:], np.float32)),
        "npy_transposed_shape": _npy(np.zeros(arr0.shape[::-1] + (1,), np.float32)),
        "npy_int32": _npy(arr0.astype(np.int32)),
        "npy_complex": _npy(arr0.astype(np.complex64)),
        "npy_float16": _npy(arr0.astype(np.float16)),
        "npy_bool": _npy(arr0 > 0),
        "npy_string": _npy(arr0.astype("U3")),
        "npy_structured": _npy(np.zeros(arr0.shape, [("a", "<f4")])),
        "npy_absurd_shape": _npy_header((2**40, 2**40)) + b"\0" * 64,
        "npy_negative_shape": _npy_header((-1, 4)) + b"\0" * 64,
        "npy_huge_header": b"\x93NUMPY\x02\x00" + (2**31 - 1).to_bytes(4, "little") + b" " * 100,
        "npy_bad_magic": b"\x93NUMPZ\x01\x00" + first_npy[8:],
        "npy_version_3": b"\x93NUMPY\x03\x00" + first_npy[8:],
        "npy_truncated_data": first_npy[:-3],
        "npy_oversized_data": first_npy + b"\0" * 4096,
        "npy_header_eval": _npy_header(arr0.shape).replace(b"'descr': '<f4'",
                                                           b"'descr': __import__('os').getcwd()"),
        "npy_header_not_dict": b"\x93NUMPY\x01\x00" + (118).to_bytes(2, "little") + b"[1,2]".ljust(117) + b"\n",
    }.items():
        out[name] = _zip([("config.json", cfg_text), ("weights.npz", _replace_member(npz, 0, data))])

    # the config
    def with_cfg(mut):
        c = json.loads(cfg_text)
        mut(c)
        return _zip([("config.json", json.dumps(c)), ("weights.npz", npz)])

    def setl(i, key, value):
        def mut(c):
            c["config"]["layers"][i]["config"][key] = value
        return mut
    out["cfg_units_1e12"] = with_cfg(setl(2, "units", 10**12))
    out["cfg_units_2e31"] = with_cfg(setl(3, "units", 2**31))
    out["cfg_embedding_1e13"] = with_cfg(setl(0, "input_dim", 10**13))
    out["cfg_units_negative"] = with_cfg(setl(2, "units", -5))
    out["cfg_units_float"] = with_cfg(setl(2, "units", 1e300))
    out["cfg_units_string"] = with_cfg(setl(2, "units", "5"))
    out["cfg_activation_code"] = with_cfg(setl(3, "activation", "__import__('os').system('true')"))
    out["cfg_class_import"] = with_cfg(lambda c: c["config"]["layers"][0].__setitem__("class_name", "os.system"))
    out["cfg_class_lambda"] = with_cfg(lambda c: c["config"]["layers"][0].__setitem__("class_name", "Lambda"))
    out["cfg_unknown_format"] = with_cfg(lambda c: c.__setitem__("format", "pickle"))
    out["cfg_future_version"] = with_cfg(lambda c: c.__setitem__("format_version", 99))
    out["cfg_weights_manifest_shape"] = with_cfg(
        lambda c: c["weights"][0].__setitem__("shape", [2**40, 2**40]))
    out["cfg_weights_manifest_dtype"] = with_cfg(lambda c: c["weights"][0].__setitem__("dtype", "object"))
    out["cfg_weights_missing"] = with_cfg(lambda c: c.pop("weights"))
    out["cfg_layers_not_list"] = with_cfg(lambda c: c["config"].__setitem__("layers", "SimpleRNN"))
    out["cfg_build_shape_huge"] = with_cfg(
        lambda c: c["config"]["layers"][2].__setitem__("build_config", {"input_shape": [None, None, 2**40]}))
    out["cfg_not_json"] = _zip([("config.json", b"{not json"), ("weights.npz", npz)])
    out["cfg_not_utf8"] = _zip([("config.json", b"\xff\xfe\x00"), ("weights.npz", npz)])
    out["cfg_json_list"] = _zip([("config.json", b"[]"), ("weights.npz", npz)])
    out["cfg_deep_nesting"] = _zip([("config.json", "[" * 100000 + "]" * 100000), ("weights.npz", npz)])
    out["cfg_deep_nesting_inside"] = _zip([("config.json", cfg_text.replace(
        '"format": "crnn-model"', '"format": "crnn-model", "x": ' + "[" * 50000 + "]" * 50000)),
        ("weights.npz", npz)])
    out["cfg_huge_int_literal"] = _zip([("config.json", cfg_text.replace(
        '"format_version": 1', '"format_version": 1' + "0" * 100000)), ("weights.npz", npz)])
    return out


# Zip bombs are built lazily (a few hundred MB of zeros, streamed through the compressor).
def zip_bombs():
    good = valid_bytes()
    cfg, npz = _parts(good)
    cfg_text = json.dumps(cfg)

    def deflated(name, nbytes):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
            with z.open(name, "w", force_zip64=True) as f:
                chunk = b" " * 2**20
                for _ in range(nbytes // 2**20):
                    f.write(chunk)
        return b.getvalue()

    bombs = {}
    # config.json that inflates to 256 MiB (cap: 16 MiB)
    cfg_bomb = deflated("config.json", 256 * 2**20)
    bombs["config_bomb_256MiB"] = _zip_raw_copy(cfg_bomb, extra=[("weights.npz", npz)])
    # a lying header: central directory says 100 bytes, the stream inflates to 256 MiB
    bombs["config_bomb_lying_size"] = _lie_about_size(bombs["config_bomb_256MiB"], "config.json", 100)
    # the inner .npy inflates to 256 MiB
    inner = deflated(_npz_members(npz)[0][0], 256 * 2**20)
    inner_members = _npz_members(npz)[1:]
    inner_full = _zip_raw_copy(inner, extra=inner_members)
    bombs["npz_member_bomb"] = _zip([("config.json", cfg_text), ("weights.npz", inner_full)])
    bombs["npz_member_bomb_lying"] = _zip([("config.json", cfg_text), ("weights.npz", _lie_about_size(
        inner_full, _npz_members(npz)[0][0], len(_npz_members(npz)[0][1])))])
    return bombs


def _zip_raw_copy(zip_bytes: bytes, extra) -> bytes:
    """zip_bytes with more stored members appended (keeps the deflated member as it is)."""
    b = io.BytesIO(zip_bytes)
    with zipfile.ZipFile(b, "a") as z:
        for name, data in extra:
            z.writestr(name, data)
    return b.getvalue()


def _lie_about_size(zip_bytes: bytes, name: str, size: int) -> bytes:
    """Patch the uncompressed size of ``name`` in its local header and central directory."""
    data = bytearray(zip_bytes)
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        info = z.getinfo(name)
    real = info.file_size
    # zip64 extra fields hold 8-byte sizes; plain headers 4-byte ones: patch every occurrence
    for width in (4, 8):
        old = real.to_bytes(width, "little")
        new = size.to_bytes(width, "little")
        start = 0
        while True:
            i = data.find(old, start)
            if i < 0:
                break
            data[i:i + width] = new
            start = i + width
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
def test_valid_file_loads_and_matches():
    m = _valid_model()
    buf = io.BytesIO()
    m.save(buf)
    m2 = crnn.load_model(io.BytesIO(buf.getvalue()))
    x = np.random.default_rng(0).integers(0, 20, (3, 7))
    assert np.array_equal(m.predict(x), m2.predict(x))


_CHILD_LOAD = """
import io, os, sys, time, traceback
sys.path.insert(0, "tests")
import crnn
from test_hostile_files import {builder}
marker = {marker!r}
files = {builder}({args})
for name, data in files.items():
    t0 = time.time()
    try:
        crnn.load_model(io.BytesIO(data))
        res = "LOADED"
    except (ValueError, OSError) as err:
        res = "OK " + type(err).__name__ + ": " + str(err).replace("\\n", " ")[:300]
    except BaseException as err:
        res = "BAD " + type(err).__name__ + ": " + str(err).replace("\\n", " ")[:300]
    print(name, "::", res, ":: %.2fs" % (time.time() - t0), flush=True)
    if os.path.exists(marker):
        print(name, ":: BAD the pickle payload ran (marker file created)", flush=True)
        os.unlink(marker)
print("DONE", flush=True)
"""

#: Hostile files whose current outcome is a known bug (none open; keep the mechanism).
KNOWN_BAD: dict = {}


def _run_hostile(tmp_path, builder, args=""):
    marker = str(tmp_path / "PWNED")
    proc = _child(_CHILD_LOAD.format(builder=builder, marker=marker, args=args), timeout=180)
    assert "DONE" in proc.stdout, f"the loader child died\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert not os.path.exists(marker), "a pickle payload was executed"
    results = {}
    for line in proc.stdout.splitlines():
        if " :: " in line:
            name, res, *rest = line.split(" :: ")
            results[name] = (res, rest)
    return results


def test_hostile_crnn_files_are_rejected(tmp_path):
    results = _run_hostile(tmp_path, "hostile_files", "marker")
    expected = hostile_files(str(tmp_path / "PWNED"))
    assert set(results) == set(expected), "some files produced no result"
    bad = []
    for name, (res, rest) in results.items():
        secs = float(rest[0].rstrip("s")) if rest else 0.0
        if name in KNOWN_BAD:
            continue
        if res == "LOADED" and name != "appended_junk":
            bad.append(f"{name}: loaded a hostile file")
        elif res.startswith("BAD"):
            bad.append(f"{name}: {res}")
        elif secs > 5:
            bad.append(f"{name}: took {secs:.1f} s")
    assert not bad, "\n".join(bad)
    print(f"\nhostile .crnn files: {len(results)} cases, all rejected with ValueError/OSError")


def test_deeply_nested_config_is_value_error():
    """json.loads raises RecursionError on deep nesting; load_model must map it to ValueError."""
    cfg, npz = _parts(valid_bytes())
    data = _zip([("config.json", "[" * 100000 + "]" * 100000), ("weights.npz", npz)])
    with pytest.raises(ValueError):
        crnn.load_model(io.BytesIO(data))


def test_zip_bombs_are_refused(tmp_path):
    results = _run_hostile(tmp_path, "zip_bombs")
    assert len(results) == 4
    bad = [f"{n}: {r} {rest}" for n, (r, rest) in results.items()
           if not r.startswith("OK") or float(rest[0].rstrip("s")) > 10]
    assert not bad, "\n".join(bad)


def test_path_traversal_never_writes(tmp_path):
    """The loader never extracts: nothing appears beside the file or in its parent."""
    d = tmp_path / "models"
    d.mkdir()
    files = hostile_files(str(tmp_path / "PWNED"))
    for name in ("path_traversal_member", "absolute_member", "traversal_instead_of_config",
                 "npz_traversal_member"):
        p = d / f"{name}.crnn"
        p.write_bytes(files[name])
        with pytest.raises(ValueError):
            crnn.load_model(p)
    assert sorted(os.listdir(d)) == sorted(f"{n}.crnn" for n in (
        "path_traversal_member", "absolute_member", "traversal_instead_of_config", "npz_traversal_member"))
    assert sorted(os.listdir(tmp_path)) == ["models"]
    assert not os.path.exists("/tmp/crnn-evil.txt")


def test_unreadable_paths_are_oserror(tmp_path):
    with pytest.raises(OSError):
        crnn.load_model(tmp_path / "missing.crnn")
    with pytest.raises((OSError, ValueError)):
        crnn.load_model(tmp_path)


# ---------------------------------------------------------------------------------------------
# Fuzzing (hypothesis in a child process with an address-space limit and a time budget)
# ---------------------------------------------------------------------------------------------
_FUZZ = """
import io, sys, time, zipfile
sys.path.insert(0, "tests")
import numpy as np
import crnn
from hypothesis import given, settings, HealthCheck, strategies as st
from test_hostile_files import valid_bytes, _parts, _zip
BUDGET = {budget}
good = valid_bytes()
cfg, npz = _parts(good)
ALLOWED = {allowed}
t_end = time.time() + BUDGET
count = [0]

@st.composite
def mutated(draw):
    # mutate the whole file, the config member or the npz member
    target = draw(st.sampled_from(["file", "config", "npz"]))
    import json
    base = {{"file": good, "config": json.dumps(cfg).encode(), "npz": npz}}[target]
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0, 0xff, 0x7f, 0x80, ord("9"), ord("["), ord('"')]))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[i:]
        else:
            j = draw(st.integers(0, len(data) - 1))
            data[i:i] = data[j:j + draw(st.integers(1, 64))]
    data = bytes(data)
    if target == "config":
        return _zip([("config.json", data), ("weights.npz", npz)])
    if target == "npz":
        return _zip([("config.json", json.dumps(cfg)), ("weights.npz", data)])
    return data

@settings(max_examples={max_examples}, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(data=mutated())
def fuzz(data):
    if time.time() > t_end:
        return
    count[0] += 1
    try:
        {call}
    except ALLOWED:
        pass
    except MemoryError:
        raise
    except Exception as err:
        key = type(err).__module__ + "." + type(err).__qualname__
        if key not in escaped:
            import traceback
            where = " <- ".join(f"{{f.name}}:{{f.lineno}}" for f in
                                reversed(traceback.extract_tb(err.__traceback__)[-3:]))
            path = "{dump}" + "/escaped-" + key.replace(".", "_") + ".bin"
            with open(path, "wb") as f:
                f.write(data)
            escaped[key] = (str(err)[:200].replace("\\n", " ") + " at " + where + " (file: " + path + ")",
                            data[:40])

escaped = {{}}
fuzz()
for key, (msg, head) in sorted(escaped.items()):
    print("ESCAPED", key, "::", msg, "::", head, flush=True)
print("DONE", count[0], flush=True)
"""

#: Exceptions the fuzzer may see escape load_model as known open bugs (none now: zlib.error,
#: NotImplementedError and RecursionError, found by this fuzzer, are mapped to ValueError).
KNOWN_ESCAPES: set = set()


def _fuzz_result(proc, what):
    assert "DONE" in proc.stdout, (f"{what} fuzzing crashed or hung (exit {proc.returncode}):\n"
                                   f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    escaped = {}
    for line in proc.stdout.splitlines():
        if line.startswith("ESCAPED "):
            key, rest = line[8:].split(" :: ", 1)
            escaped[key] = rest
    n = int(proc.stdout.split("DONE")[1].split()[0])
    return n, escaped


def test_fuzz_load_model(tmp_path):
    pytest.importorskip("hypothesis")
    proc = _child(_FUZZ.format(budget=12, max_examples=3000, allowed="(ValueError, OSError)",
                               call="crnn.load_model(io.BytesIO(data))", dump=str(tmp_path)),
                  timeout=120)
    n, escaped = _fuzz_result(proc, "load_model")
    print(f"\nload_model fuzz: {n} mutated files; escaped exception types: {sorted(escaped)}")
    unknown = {k: v for k, v in escaped.items() if k not in KNOWN_ESCAPES}
    assert not unknown, "load_model let undocumented exceptions escape:\n" + "\n".join(
        f"{k}: {v}" for k, v in unknown.items())
    assert n >= 200


def _corrupt_deflate() -> bytes:
    data = bytearray(valid_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("config.json")
    assert info.compress_type == zipfile.ZIP_DEFLATED
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start] ^= 0x02  # the first deflate block header: "invalid block type"
    return bytes(data)


def _corrupt_version() -> bytes:
    data = bytearray(valid_bytes())
    cd = int.from_bytes(data[-22 + 16:-22 + 20], "little")  # the outer central directory
    assert data[cd:cd + 4] == b"PK\x01\x02"
    data[cd + 6] = 0xFF  # its first entry's "version needed to extract": 25.5
    return bytes(data)


@pytest.mark.parametrize("make", [
    pytest.param(_corrupt_deflate, id="zlib.error"),
    pytest.param(_corrupt_version, id="NotImplementedError")])
def test_damaged_archive_is_value_error(make):
    """Corrupt deflate data (zlib.error) and an unknown zip version (NotImplementedError) inside
    zipfile must reach the caller as ValueError (both found by the fuzzer below)."""
    with pytest.raises(ValueError):
        crnn.load_model(io.BytesIO(make()))


# ---------------------------------------------------------------------------------------------
# ONNX (crnn's own protobuf reader; no onnx package needed) and Keras (needs h5py)
# ---------------------------------------------------------------------------------------------
#: Exception types allowed to escape load_onnx under fuzzing beyond the documented ones: none.
#: (An IndexError from constant folding of a node with too few inputs did, until the folding
#: path got the same error mapping as the run path.)
KNOWN_ONNX_ESCAPES: set = set()


def _onnx_bytes():
    pytest.importorskip("crnn.interop.onnx_export")
    m = crnn.Sequential([crnn.SimpleRNN(3, input_shape=(None, 4), return_sequences=True),
                         crnn.SimpleRNN(2)])
    m.build((None, 6, 4))
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        try:
            crnn.to_onnx(m, path)
            with open(path, "rb") as f:
                return f.read()
        except Exception as err:  # noqa: BLE001 - the exporter is still being finished (issue 5)
            pytest.skip(f"crnn.to_onnx does not produce a file here yet: {type(err).__name__}: {err}")


def _onnx_model(nodes, outputs, inits=()) -> bytes:
    """A model without graph inputs: everything in it is folded at load time."""
    return onnx_model(nodes, [], outputs, inits)


def _nested_graph_attributes(depth: int) -> bytes:
    """A model whose node holds a graph attribute holding a node holding a graph ... (raw
    protobuf, built without recursion: no protobuf library serialises this deep)."""
    from crnn.interop import _protobuf as pb
    graph = b""
    for _ in range(depth):
        attr = pb.encode({"name": "body", "type": 5}, pb.ATTRIBUTE) + \
            pb._key(6, 2) + pb._enc_varint(len(graph)) + graph
        node = pb.encode({"op_type": "If", "input": ["c"], "output": ["y"]}, pb.NODE) + \
            pb._key(5, 2) + pb._enc_varint(len(attr)) + attr
        graph = pb._key(1, 2) + pb._enc_varint(len(node)) + node
    return pb.encode({"ir_version": 8, "opset_import": [{"domain": "", "version": 17}]}, pb.MODEL) \
        + pb._key(7, 2) + pb._enc_varint(len(graph)) + graph


def onnx_hostile_files():
    """Small ONNX files that ask the loader for huge tensors, huge work or deep recursion.

    Name -> (bytes, a regular expression the OnnxError message must match)."""
    from onnx import TensorProto as TP
    from onnx import helper as oh
    one = np.ones(1, np.float32)
    f, i64 = TP.FLOAT, TP.INT64
    many = []
    for k in range(64):   # each tensor within MAX_FOLD_ELEMENTS, all of them not
        many += [oh.make_node("Expand", ["one", "shape"], [f"e{k}"]),
                 oh.make_node("ReduceSum", [f"e{k}"], [f"s{k}"], keepdims=0)]
    many.append(oh.make_node("Sum", [f"s{k}" for k in range(64)], ["y"]))
    big_dims = _empty_tensor("w", [2**32, 2**32])
    return {
        "expand_2_33_then_reduce": (_onnx_model(
            [oh.make_node("Expand", ["one", "shape"], ["e"]),
             oh.make_node("ReduceSum", ["e"], ["y"], keepdims=0)],
            [("y", f, [])], {"one": one, "shape": np.array([2**33])}), "MAX_FOLD_ELEMENTS"),
        "constant_of_shape_2_40": (_onnx_model(
            [oh.make_node("ConstantOfShape", ["shape"], ["y"])], [("y", f, None)],
            {"shape": np.array([2**40])}), "MAX_FOLD_ELEMENTS"),
        "constant_of_shape_rank_40": (_onnx_model(
            [oh.make_node("ConstantOfShape", ["shape"], ["y"])], [("y", f, None)],
            {"shape": np.ones(40, np.int64)}), "rank 40, more than the limit MAX_TENSOR_RANK"),
        "range_2_40": (_onnx_model(
            [oh.make_node("Range", ["a", "b", "c"], ["y"])], [("y", i64, None)],
            {"a": np.array(0), "b": np.array(2**40), "c": np.array(1)}), "MAX_FOLD_ELEMENTS"),
        "broadcast_add_2_27": (_onnx_model(
            [oh.make_node("Add", ["a", "b"], ["y"])], [("y", f, None)],
            {"a": np.zeros((8192, 1), np.float32), "b": np.zeros((1, 16384), np.float32)}),
            "MAX_FOLD_ELEMENTS"),
        "gather_2_27": (_onnx_model(
            [oh.make_node("Gather", ["a", "i"], ["y"])], [("y", f, None)],
            {"a": np.zeros((1, 16384), np.float32), "i": np.zeros(8192, np.int64)}),
            "MAX_FOLD_ELEMENTS"),
        "matmul_of_expands_2_39_flops": (_onnx_model(
            [oh.make_node("Expand", ["one", "shape"], ["e"]),
             oh.make_node("MatMul", ["e", "e"], ["y"])],
            [("y", f, None)], {"one": one, "shape": np.array([8192, 8192])}), "MAX_FOLD_WORK"),
        "64_folds_of_2_25": (_onnx_model(many, [("y", f, None)], {
            "one": one, "shape": np.array([2**25])}), "MAX_FOLD_WORK"),
        "graph_attributes_400_deep": (_nested_graph_attributes(400), "nested more than 100"),
        "dims_2_32_by_2_32_no_data": (_onnx_model_with_initializer(big_dims), "multiply past"),
        "dims_0_by_2_62_by_2_62": (_onnx_model_with_initializer(_empty_tensor(
            "w", [0, 2**62, 2**62])), "multiply past"),
        "rank_40": (_onnx_model([oh.make_node("Identity", ["w"], ["y"])], [("y", f, None)],
                                {"w": np.zeros((1,) * 40, np.float32)}), "rank 40"),
    }


def _empty_tensor(name, dims):
    """A float TensorProto with dims and no data (onnx.helper.make_tensor refuses to make one)."""
    from onnx import TensorProto as TP
    t = TP()
    t.name, t.data_type = name, TP.FLOAT
    t.dims.extend(dims)
    return t


def _onnx_model_with_initializer(tensor) -> bytes:
    from onnx import TensorProto as TP
    from onnx import helper as oh
    g = oh.make_graph([oh.make_node("Identity", [tensor.name], ["y"])], "g", [],
                      [oh.make_tensor_value_info("y", TP.FLOAT, None)], [tensor])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


_CHILD_ONNX = """
import sys, time
sys.path.insert(0, "tests")
import crnn
from crnn.interop.onnx import OnnxError
from test_hostile_files import onnx_hostile_files
for name, (data, _) in onnx_hostile_files().items():
    t0 = time.time()
    try:
        crnn.load_onnx(data)
        res = "LOADED"
    except OnnxError as err:
        res = "OK " + str(err).replace("\\n", " ")[:400]
    except BaseException as err:
        res = "BAD " + type(err).__name__ + ": " + str(err).replace("\\n", " ")[:300]
    print(name, "::", res, ":: %.2fs" % (time.time() - t0), flush=True)
print("DONE", flush=True)
"""


def _loader_child_rows(script: str) -> "list[list[str]]":
    """Run a loader child script to its "DONE" line; its result lines, split at " :: "."""
    proc = _child(script, timeout=300)
    assert "DONE" in proc.stdout, \
        f"the loader child died\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return [line.split(" :: ") for line in proc.stdout.splitlines() if " :: " in line]


def test_onnx_files_asking_for_huge_tensors_or_work_are_refused_quickly():
    """Each file is at most 130 KiB; each must be an OnnxError naming the limit within 2 s,
    under a 4 GiB address-space limit (a MemoryError or a slow load is a failure)."""
    pytest.importorskip("onnx")
    files = onnx_hostile_files()
    bad = []
    for name, res, secs in _loader_child_rows(_CHILD_ONNX):
        if not res.startswith("OK ") or not re.search(files[name][1], res):
            bad.append(f"{name}: {res}")
        elif float(secs.rstrip("s")) > 2:
            bad.append(f"{name}: took {secs}")
    assert not bad, "\n".join(bad)
    assert max(len(d) for d, _ in files.values()) < 140 * 1024


_CHILD_PACKED = """
import time, tracemalloc
import crnn
from crnn.interop import _protobuf as pb
from crnn.interop.onnx import OnnxError

def field(num, body):
    return pb._key(num, 2) + pb._enc_varint(len(body)) + body

head = pb.encode({"ir_version": 8, "opset_import": [{"domain": "", "version": 17}]}, pb.MODEL)
for name, varint in (("1-byte", b"\\x01"), ("2-byte", b"\\xac\\x02"),
                     ("10-byte", pb._enc_varint(-2**40))):
    count = %d // len(varint)
    tensor = pb.encode({"name": "w", "dims": [1], "data_type": 7}, pb.TENSOR) + \\
        field(7, varint * count)
    data = head + field(7, pb.encode({"output": [{"name": "y"}]}, pb.GRAPH) + field(5, tensor))
    del tensor
    results = []
    for traced in (False, True):
        if traced:
            tracemalloc.start()
        t0 = time.perf_counter()
        try:
            crnn.load_onnx(data)
            res = "LOADED"
        except OnnxError as err:
            res = "OK " + str(err)
        except BaseException as err:
            res = "BAD " + type(err).__name__ + ": " + str(err)[:300]
        results.append(time.perf_counter() - t0)
        if traced:
            results.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    print(name, "::", count, "::", len(data), "::", results[0], "::", results[2], "::", res,
          flush=True)
print("DONE", flush=True)
"""


def test_onnx_huge_packed_varints_are_decoded_quickly_in_little_memory():
    """20 MiB of packed int64_data for a one-element tensor (varints of 1, 2 and 10 bytes):
    refused as holding too many values within 3 s (about 0.5 s here; decoding value by value
    took 5 s here and 14 s elsewhere), and using at most the values' int64 array (8 bytes a
    value) plus twice the file's size (a mask of its bytes, chunks of temporaries) in traced
    allocations; Python ints and lists of them took 2 to 6 times that."""
    size = 20 * 2**20
    rows = _loader_child_rows(_CHILD_PACKED % size)
    bad = []
    for name, count, nbytes, secs, peak, res in rows:
        count, nbytes, secs, peak = int(count), int(nbytes), float(secs), int(peak)
        if not res.startswith(f"OK tensor 'w': holds {count} values, expected 1"):
            bad.append(f"{name}: {res}")
        if secs > 3:
            bad.append(f"{name}: took {secs:.2f} s")
        if peak > 8 * count + 2 * nbytes:
            bad.append(f"{name}: traced {peak / 2**20:.0f} MiB for {count} values in "
                       f"{nbytes / 2**20:.0f} MiB, more than {(8 * count + 2 * nbytes) / 2**20:.0f}")
    assert len(rows) == 3
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("info,match", [
    ({"location": "w\0.bin"}, "location"),
    ({"location": "w.bin", "offset": "abc"}, "offset 'abc'"),
    ({"location": "w.bin", "length": "-4"}, "length '-4'"),
    ({"location": "w.bin", "length": "1e3"}, "length '1e3'"),
    ({"location": "../w.bin"}, "inside the model's directory"),
    ({"location": "/etc/passwd"}, "inside the model's directory"),
    ({"location": "missing.bin"}, "cannot read external data"),
    ({"location": "w.bin", "offset": "10"}, "holds 16 bytes, expected 16 at offset 10"),
])
def test_onnx_external_data_fields_are_checked(tmp_path, info, match):
    from crnn.interop.onnx import OnnxError
    pytest.importorskip("onnx")
    (tmp_path / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    (tmp_path / "m.onnx").write_bytes(_external_model([4], info))
    with pytest.raises(OnnxError, match=match):
        crnn.load_onnx(str(tmp_path / "m.onnx"))


def _external_model(dims, info) -> bytes:
    from onnx import TensorProto as TP
    t = _empty_tensor("w", dims)
    t.data_location = TP.EXTERNAL
    for k, v in info.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    return _onnx_model_with_initializer(t)


def test_onnx_external_data_stays_in_the_model_directory(tmp_path):
    """Symbolic links are resolved before the containment check (as ONNX Runtime does);
    a FIFO or a device is refused without blocking; a huge declared size is checked against
    the file's size before anything is read."""
    import threading
    from crnn.interop.onnx import OnnxError
    pytest.importorskip("onnx")
    outside = tmp_path / "secret.bin"
    outside.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    d = tmp_path / "model"
    d.mkdir()
    (d / "m.onnx").write_bytes(_external_model([4], {"location": "link.bin"}))
    os.symlink(outside, d / "link.bin")
    with pytest.raises(OnnxError, match="escapes the model's directory"):
        crnn.load_onnx(str(d / "m.onnx"))
    os.unlink(d / "link.bin")
    (d / "real.bin").write_bytes(outside.read_bytes())
    os.symlink(d / "real.bin", d / "link.bin")          # a link that stays inside is fine
    np.testing.assert_array_equal(crnn.load_onnx(str(d / "m.onnx"))(), [0, 1, 2, 3])
    (d / "huge.onnx").write_bytes(_external_model([2**40], {"location": "real.bin"}))
    with pytest.raises(OnnxError, match="holds 16 bytes, expected 4398046511104"):
        crnn.load_onnx(str(d / "huge.onnx"))
    # a directory: refused as not a regular file, its descriptor closed (it once leaked one
    # per attempt, with an IsADirectoryError naming the descriptor)
    (d / "sub").mkdir()
    (d / "dir.onnx").write_bytes(_external_model([4], {"location": "sub"}))
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(20):
        with pytest.raises(OnnxError, match="'sub' is not a regular file"):
            crnn.load_onnx(str(d / "dir.onnx"))
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) <= fds
    (d / "dev.onnx").write_bytes(_external_model([4], {"location": "zero"}))
    os.symlink("/dev/zero", d / "zero")
    with pytest.raises(OnnxError, match="escapes the model's directory"):
        crnn.load_onnx(str(d / "dev.onnx"))
    os.mkfifo(d / "fifo")
    (d / "fifo.onnx").write_bytes(_external_model([4], {"location": "fifo"}))
    outcome = []

    def load():
        try:
            crnn.load_onnx(str(d / "fifo.onnx"))
            outcome.append("loaded")
        except Exception as err:  # noqa: BLE001
            outcome.append(err)
    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():   # release the blocked reader before failing
        os.close(os.open(d / "fifo", os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail("load_onnx blocked opening a FIFO named as external data")
    assert isinstance(outcome[0], OnnxError) and "not a regular file" in str(outcome[0])


def test_onnx_hostile_inputs(tmp_path):
    from crnn.interop.onnx import OnnxError
    good = _onnx_bytes()
    crnn.load_onnx(good)  # the valid file loads
    cases = {"empty": b"", "junk": b"\x08" * 100, "truncated_half": good[: len(good) // 2],
             "truncated_1": good[:-1], "varint_forever": b"\x0a" + b"\xff" * 20,
             "length_huge": b"\x0a\xff\xff\xff\xff\x0f" + b"\0" * 10,
             "pickle": pickle.dumps(_Payload(str(tmp_path / "PWNED")))}
    for name, data in cases.items():
        with pytest.raises(ValueError):
            crnn.load_onnx(data)
    assert not os.path.exists(tmp_path / "PWNED")
    assert issubclass(OnnxError, ValueError)


def test_fuzz_load_onnx(tmp_path):
    pytest.importorskip("hypothesis")
    good = tmp_path / "m.onnx"
    good.write_bytes(_onnx_bytes())
    code = _FUZZ.replace("good = valid_bytes()", f"good = open({str(good)!r}, 'rb').read()").replace(
        "cfg, npz = _parts(good)", "cfg, npz = dict(), b''")
    code = code.replace('target = draw(st.sampled_from(["file", "config", "npz"]))', 'target = "file"')
    proc = _child(code.format(budget=8, max_examples=3000, allowed="(ValueError, OSError)",
                              call="crnn.load_onnx(data)", dump=str(tmp_path)), timeout=120)
    n, escaped = _fuzz_result(proc, "load_onnx")
    print(f"\nload_onnx fuzz: {n} mutated files; escaped exception types: {sorted(escaped)}")
    for k, v in escaped.items():
        print(f"  {k}: {v}")
    unknown = {k: v for k, v in escaped.items() if k not in KNOWN_ONNX_ESCAPES}
    assert not unknown, "load_onnx let undocumented exceptions escape:\n" + "\n".join(
        f"{k}: {v}" for k, v in unknown.items())
    assert n >= 200


def test_keras_hostile_inputs(tmp_path):
    pytest.importorskip("h5py")
    for name, data in {"empty": b"", "junk": b"PK\x03\x04junk", "pickle": pickle.dumps(_Payload(
            str(tmp_path / "PWNED"))), "crnn_file": valid_bytes()}.items():
        p = tmp_path / f"{name}.keras"
        p.write_bytes(data)
        with pytest.raises((ValueError, OSError)):
            crnn.load_keras(p)
    assert not os.path.exists(tmp_path / "PWNED")


# ---------------------------------------------------------------------------------------------
# load_keras: HDF5 files that point outside themselves, claim huge sizes, or are malformed
# ---------------------------------------------------------------------------------------------
_KERAS_CONFIG = {"class_name": "Sequential", "config": {"name": "m", "layers": [
    {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 5, 3]}},
    {"class_name": "SimpleRNN", "config": {"name": "rnn", "units": 4, "activation": "tanh",
                                           "use_bias": True, "dtype": "float32"}}]}}
_KERAS_VARS = "layers/simple_rnn/cell/vars"


def _keras_file(path, write_h5, config=_KERAS_CONFIG, compression=zipfile.ZIP_STORED):
    """A .keras archive whose model.weights.h5 is written by ``write_h5(h5py.File)``."""
    import h5py
    h5_path = str(path) + ".h5"
    with h5py.File(h5_path, "w") as f:
        write_h5(f)
    with open(h5_path, "rb") as f:
        h5 = f.read()
    os.unlink(h5_path)
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        z.writestr("model.weights.h5", h5)
    return path


def _good_vars(f, prefix=_KERAS_VARS):
    rng = np.random.default_rng(0)
    f[f"{prefix}/0"] = rng.uniform(-0.5, 0.5, (3, 4)).astype(np.float32)
    f[f"{prefix}/1"] = rng.uniform(-0.2, 0.2, (4, 4)).astype(np.float32)
    f[f"{prefix}/2"] = rng.uniform(-0.5, 0.5, 4).astype(np.float32)
    f[prefix].attrs["name"] = "rnn"


def _keras_fails(path, match):
    from crnn.interop.keras import KerasConversionError
    with pytest.raises(KerasConversionError, match=match):
        crnn.load_keras(str(path))


def test_keras_hdf5_pointing_outside_the_file_is_refused(tmp_path):
    """External storage, external links and virtual datasets would read other files (a file's
    bytes came back through predict); only data inside model.weights.h5 is read."""
    h5py = pytest.importorskip("h5py")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(12, dtype=np.float32).tobytes())
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        _good_vars(f)
        f["data"] = np.zeros((3, 4), np.float32)
    good = _keras_file(tmp_path / "good.keras", _good_vars)
    assert crnn.load_keras(str(good)).layers[0].units == 4

    def external_storage(f):
        _good_vars(f)
        del f[f"{_KERAS_VARS}/0"]
        f.create_dataset(f"{_KERAS_VARS}/0", (3, 4), "f4", external=[(str(secret), 0, 48)])

    def external_link(f):
        f["layers/simple_rnn"] = h5py.ExternalLink(str(other), "/layers/simple_rnn")

    def virtual(f):
        _good_vars(f)
        del f[f"{_KERAS_VARS}/0"]
        layout = h5py.VirtualLayout((3, 4), "f4")
        layout[:] = h5py.VirtualSource(str(other), "data", (3, 4))
        f.create_virtual_dataset(f"{_KERAS_VARS}/0", layout)

    def soft_link(f):
        _good_vars(f, "elsewhere/vars")
        f["layers/simple_rnn/cell"] = h5py.SoftLink("/elsewhere")

    for name, writer, match in [("external_storage", external_storage, "external storage"),
                                ("external_link", external_link, "external link"),
                                ("virtual", virtual, "virtual dataset"),
                                ("soft_link", soft_link, "soft link")]:
        _keras_fails(_keras_file(tmp_path / f"{name}.keras", writer), match)


def test_keras_declared_sizes_are_checked_before_reading(tmp_path):
    """Shapes come from the config and are checked before a dataset is read; a dataset must
    hold its data (an unwritten one reads as fill values of any declared size)."""
    pytest.importorskip("h5py")
    big_cfg = json.loads(json.dumps(_KERAS_CONFIG))
    big_cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, 5, 262144]
    big_cfg["config"]["layers"][1]["config"]["units"] = 1024

    def unwritten(f):   # matches the config: 1 GiB of fill values from an 800-byte file
        f.create_dataset(f"{_KERAS_VARS}/0", (262144, 1024), "f4")
        f[f"{_KERAS_VARS}/1"] = np.zeros((1024, 1024), np.float32)
        f[f"{_KERAS_VARS}/2"] = np.zeros(1024, np.float32)
    path = _keras_file(tmp_path / "unwritten.keras", unwritten, big_cfg, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 20000
    _keras_fails(path, r"vars/0: holds 0 bytes of its 1073741824")

    def wrong_shape(f):   # does not match the config: refused without reading it
        _good_vars(f)
        del f[f"{_KERAS_VARS}/0"]
        f.create_dataset(f"{_KERAS_VARS}/0", (262144, 1024), "f4")
    _keras_fails(_keras_file(tmp_path / "wrong_shape.keras", wrong_shape),
                 r"vars/0: got shape \(262144, 1024\), expected \(3, 4\)")

    def not_float(f):
        _good_vars(f)
        del f[f"{_KERAS_VARS}/2"]
        f[f"{_KERAS_VARS}/2"] = np.array([b"abcd"] * 4)
    _keras_fails(_keras_file(tmp_path / "not_float.keras", not_float), r"vars/2: got dtype")

    def gzip(f):   # compressed datasets are fine
        for i, a in enumerate([np.ones((3, 4)), np.ones((4, 4)), np.ones(4)]):
            f.create_dataset(f"{_KERAS_VARS}/{i}", data=a.astype(np.float32), compression="gzip")
    assert crnn.load_keras(str(_keras_file(tmp_path / "gzip.keras", gzip))).count_params() == 32

    huge = json.loads(json.dumps(_KERAS_CONFIG))
    huge["config"]["layers"][1]["config"]["units"] = 46340   # 8 GiB recurrent kernel
    from crnn.interop.keras import MAX_WEIGHTS_BYTES
    _keras_fails(_keras_file(tmp_path / "huge.keras", _good_vars, huge),
                 rf"more than the limit MAX_WEIGHTS_BYTES = {MAX_WEIGHTS_BYTES}")


def test_keras_archive_members_are_streamed_and_capped(tmp_path):
    """A deflated model.weights.h5 that inflates to 256 MiB is refused after reading at most
    what the config's weights can need (it was read whole: 1 MB files peaked at 2 GB RSS)."""
    pytest.importorskip("h5py")
    good = _keras_file(tmp_path / "good.keras", _good_vars)
    with zipfile.ZipFile(good) as z:
        h5 = z.read("model.weights.h5")
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(_KERAS_CONFIG))
        with z.open("model.weights.h5", "w", force_zip64=True) as f:
            f.write(h5)
            chunk = bytes(2**20)
            for _ in range(256):
                f.write(chunk)
    assert bomb.stat().st_size < 2 * 2**20
    _keras_fails(bomb, r"model.weights.h5: is \d+ bytes, more than the \d+ this model can need")
    big_config = tmp_path / "big_config.keras"
    with zipfile.ZipFile(big_config, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(_KERAS_CONFIG) + " " * (20 * 2**20))
        z.writestr("model.weights.h5", h5)
    _keras_fails(big_config, r"config.json: is \d+ bytes, more than the limit")
    dup = tmp_path / "dup.keras"
    dup.write_bytes(_zip([("config.json", json.dumps(_KERAS_CONFIG))] * 2
                         + [("model.weights.h5", h5)]))
    _keras_fails(dup, r"duplicated member\(s\) \['config.json'\]")


@pytest.mark.parametrize("config,match", [
    ({"class_name": "Sequential", "config": {"layers": [5]}}, r"layers\[0\]: got int"),
    ({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": 7}]}},
     r"layers\[0\]: config: got int"),
    ({"class_name": "Functional", "config": {
        "layers": [{"class_name": "InputLayer", "name": "in", "config": {"name": "in"}},
                   {"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2},
                    "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                                 "config": {}}], "kwargs": {}}]}],
        "input_layers": [["in", 0, 0]], "output_layers": [["d", 0, 0]]}}, "keras_history"),
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "SimpleRNN", "config": {"name": "r", "units": "many"}}]}}, "units"),
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Activation", "config": {"name": f"a{i}", "activation": "relu"}}
        for i in range(1001)]}}, "MAX_CONFIG_LAYERS"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_keras_malformed_configs_are_conversion_errors(tmp_path, config, match):
    pytest.importorskip("h5py")
    _keras_fails(_keras_file(tmp_path / "m.keras", _good_vars, config), match)


def test_keras_weights_tree_that_is_not_groups_is_a_conversion_error(tmp_path):
    pytest.importorskip("h5py")

    def dataset_as_layer(f):
        _good_vars(f)
        f["layers/junk"] = np.zeros(3)
    path = _keras_file(tmp_path / "junk.keras", dataset_as_layer)
    assert crnn.load_keras(str(path)).layers[0].units == 4    # an unused extra is ignored

    def layer_is_dataset(f):
        f["layers/simple_rnn"] = np.zeros(3)
    _keras_fails(_keras_file(tmp_path / "ds.keras", layer_is_dataset), "not a group")

    def vars_is_dataset(f):
        f["layers/simple_rnn/cell/vars"] = np.zeros(3)
    _keras_fails(_keras_file(tmp_path / "vars.keras", vars_is_dataset), "not a group")

    def bad_name_attr(f):
        _good_vars(f)
        f[_KERAS_VARS].attrs["name"] = np.zeros(3)
    path = _keras_file(tmp_path / "attr.keras", bad_name_attr)
    assert crnn.load_keras(str(path)).layers[0].units == 4    # found by its path instead
