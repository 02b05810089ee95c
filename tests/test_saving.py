"""model.save / crnn.load_model (the .crnn format of crnn.saving), malformed files, pickling.

A round trip must give back the same architecture (configs equal) and bitwise the same weights,
hence bitwise the same predictions.  Every malformed file must raise ValueError (naming the
problem) before anything large is read or any object is unpickled.
"""
import copy
import io
import json
import os
import pickle
import time
import warnings
import zipfile

import numpy as np
import pytest

import crnn
from crnn import saving

from _helpers import make_layer_weights


def _models():
    """One model per layer type / option family (all built, weights drawn from fixed seeds)."""
    return {
        "classifier": crnn.Sequential([crnn.Embedding(40, 6, mask_zero=True, input_length=7, seed=1),
                                       crnn.SimpleRNN(5, seed=2),
                                       crnn.Dense(1, activation="sigmoid", seed=3)]),
        "tagger64": crnn.Sequential([
            crnn.Embedding(30, 4, mask_zero=True, dtype="float64", seed=4),
            crnn.Bidirectional(crnn.SimpleRNN(3, return_sequences=True, dtype="float64", seed=5),
                               merge_mode="ave"),
            crnn.Dense(5, activation="softmax", dtype="float64", seed=6)]),
        "deep": crnn.Sequential([
            crnn.Masking(input_shape=(None, 3)),
            crnn.SimpleRNN(4, return_sequences=True, activation="relu", use_bias=False, seed=7),
            crnn.Bidirectional(crnn.SimpleRNN(3, return_sequences=True, seed=8),
                               backward_layer=crnn.SimpleRNN(3, go_backwards=True,
                                                             return_sequences=True,
                                                             activation="sigmoid", seed=9)),
            crnn.SimpleRNN(2, go_backwards=True, return_sequences=True, seed=10),
            crnn.Dense(2, seed=11), crnn.Activation("tanh")]),
        "stateful": crnn.Sequential([crnn.SimpleRNN(4, stateful=True, return_sequences=True,
                                                    batch_input_shape=(2, None, 3), seed=12),
                                     crnn.SimpleRNN(3, stateful=True, seed=13)]),
    }


def _inputs(name, rng):
    if name in ("classifier", "tagger64"):
        ids = rng.integers(1, 30, (2, 7))
        ids[1, 4:] = 0
        return ids
    x = rng.uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    x[0, 3:] = 0
    return x


def _same_model(a, b, x):
    assert a.get_config()["layers"] == b.get_config()["layers"]
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for p, q in zip(wa, wb):
        assert p.dtype == q.dtype and p.shape == q.shape and p.tobytes() == q.tobytes()
    if a.stateful:
        a.reset_states()
        b.reset_states()
    assert a(x).tobytes() == b(x).tobytes()


@pytest.mark.parametrize("name", ["classifier", "tagger64", "deep", "stateful"])
def test_save_load_round_trip(name, tmp_path, rng):
    model = _models()[name]
    x = _inputs(name, rng)
    model(x)
    path = tmp_path / f"{name}.crnn"
    model.save(path)
    loaded = crnn.load_model(path)
    assert isinstance(loaded, crnn.Sequential) and loaded.name == model.name
    _same_model(model, loaded, x)
    # the archive is as documented: two members, JSON config, an npz np.load reads without pickle
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "weights.npz"]
        config = json.loads(zf.read("config.json"))
        npz = np.load(io.BytesIO(zf.read("weights.npz")), allow_pickle=False)
    assert config["format"] == "crnn-model" and config["format_version"] == 1
    assert config["crnn_version"] == crnn.__version__ and config["class_name"] == "Sequential"
    names = [w["name"] for w in config["weights"]]
    assert sorted(npz.files) == sorted(names)
    for entry, w in zip(config["weights"], model.get_weights()):
        assert entry["shape"] == list(w.shape) and entry["dtype"] == w.dtype.name
        assert npz[entry["name"]].tobytes() == w.tobytes()
    assert all(n.startswith("layer_") for n in names)
    # file objects and str paths work; saving is deterministic
    buf = io.BytesIO()
    crnn.save_model(model, buf)
    assert buf.getvalue() == path.read_bytes()
    buf.seek(0)
    _same_model(model, crnn.load_model(buf), x)
    _same_model(model, crnn.load_model(str(path)), x)


def test_weight_names_and_overwrite(tmp_path):
    model = _models()["deep"]
    path = tmp_path / "m.crnn"
    model.save(str(path))
    with zipfile.ZipFile(path) as zf:
        names = [w["name"] for w in json.loads(zf.read("config.json"))["weights"]]
    assert names == ["layer_1/kernel", "layer_1/recurrent_kernel",
                     "layer_2/forward/kernel", "layer_2/forward/recurrent_kernel",
                     "layer_2/forward/bias", "layer_2/backward/kernel",
                     "layer_2/backward/recurrent_kernel", "layer_2/backward/bias",
                     "layer_3/kernel", "layer_3/recurrent_kernel", "layer_3/bias",
                     "layer_4/kernel", "layer_4/bias"]
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)
    model.save(path)  # overwrite=True is the default
    assert [p.name for p in tmp_path.iterdir()] == ["m.crnn"], "no temporary files left behind"
    with pytest.raises(TypeError, match=r"model"):
        crnn.save_model(model.layers[1], tmp_path / "layer.crnn")


def test_unbuilt_and_lazily_built_models(tmp_path, rng):
    lazy = crnn.Sequential([crnn.SimpleRNN(4, return_sequences=True), crnn.Dense(2)])
    lazy.save(tmp_path / "unbuilt.crnn")
    again = crnn.load_model(tmp_path / "unbuilt.crnn")
    assert not again.built and again.get_weights() == []
    x = rng.uniform(-1, 1, (3, 5, 6)).astype(np.float32)
    lazy(x)  # built by the first call
    lazy.save(tmp_path / "built.crnn")
    _same_model(lazy, crnn.load_model(tmp_path / "built.crnn"), x)
    # layers given weights before the model knew its input shape
    w = [a for a in make_layer_weights(rng, 6, 4, np.float32)]
    m = crnn.Sequential([crnn.SimpleRNN(4, weights=w)])
    m.save(tmp_path / "weights-only.crnn")
    _same_model(m, crnn.load_model(tmp_path / "weights-only.crnn"), x)


# ---------------------------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def good(tmp_path):
    model = _models()["classifier"]
    path = tmp_path / "good.crnn"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        return {"config": json.loads(zf.read("config.json")), "npz": zf.read("weights.npz"),
                "bytes": path.read_bytes(), "dir": tmp_path}


def _write(tmp_path, members, name="bad.crnn"):
    """A zip with ``members``: list of (name, bytes or dict-as-JSON)."""
    path = tmp_path / name
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")  # duplicate names are wanted here
        for member, data in members:
            if isinstance(data, dict):
                data = json.dumps(data).encode()
            zf.writestr(member, data)
    return path


def _npz(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _load_fails(path, pattern):
    with pytest.raises(ValueError, match=pattern):
        crnn.load_model(path)


def test_rejects_non_archives_and_truncation(good):
    d = good["dir"]
    (d / "text.crnn").write_text("hello")
    _load_fails(d / "text.crnn", r"not a crnn model file|ZIP")
    (d / "empty.crnn").write_bytes(b"")
    _load_fails(d / "empty.crnn", r"ZIP")
    data = good["bytes"]
    for cut in (len(data) // 4, len(data) // 2, len(data) - 30, len(data) - 1):
        (d / "cut.crnn").write_bytes(data[:cut])
        _load_fails(d / "cut.crnn", r"load_model")
    # a flipped byte inside the stored weights: CRC error, not garbage weights
    pos = data.index(b"NUMPY") + 200
    (d / "flip.crnn").write_bytes(data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:])
    _load_fails(d / "flip.crnn", r"load_model")
    with pytest.raises(FileNotFoundError):
        crnn.load_model(d / "missing.crnn")


def test_rejects_bad_members(good):
    d, cfg, npz = good["dir"], good["config"], good["npz"]
    _load_fails(_write(d, [("config.json", cfg), ("weights.npz", npz), ("extra.txt", b"x")]),
                r"unexpected member.*extra\.txt")
    _load_fails(_write(d, [("config.json", cfg), ("weights.npz", npz), ("../evil.py", b"x")]),
                r"unexpected member.*\.\./evil\.py")
    _load_fails(_write(d, [("config.json", cfg)]), r"missing member.*weights\.npz")
    _load_fails(_write(d, [("weights.npz", npz)]), r"missing member.*config\.json")
    _load_fails(_write(d, [("config.json", cfg), ("config.json", cfg), ("weights.npz", npz)]),
                r"duplicated member")
    _load_fails(_write(d, [("/abs/config.json", cfg), ("weights.npz", npz)]), r"unexpected member")


def test_member_list_is_checked_in_linear_time(good):
    """A 2 MB archive listing config.json 40 000 times is refused at once (it took 18 s when
    duplicates were counted with list.count)."""
    d, npz = good["dir"], good["npz"]
    path = _write(d, [("config.json", b"{}")] * 40000 + [("weights.npz", npz)])
    t0 = time.perf_counter()
    _load_fails(path, r"duplicated member.*config\.json")
    assert time.perf_counter() - t0 < 3


def test_config_layer_count_is_limited(good):
    """A 43 KiB config of 16 000 Activation layers is refused before any layer is built, with
    an error naming the limit (building it took 18 s)."""
    from crnn.saving import MAX_CONFIG_LAYERS
    d, cfg = good["dir"], good["config"]
    many = dict(cfg, weights=[])
    many["config"] = {"name": "m", "layers": [
        {"class_name": "Activation", "config": {"name": f"a{i}", "activation": "relu"}}
        for i in range(16000)]}
    t0 = time.perf_counter()
    _load_fails(_write(d, [("config.json", many), ("weights.npz", _npz({}))]),
                rf"16000 layers, more than the limit MAX_CONFIG_LAYERS = {MAX_CONFIG_LAYERS}")
    assert time.perf_counter() - t0 < 3
    many["config"]["layers"] = many["config"]["layers"][:MAX_CONFIG_LAYERS]
    ok = _write(d, [("config.json", many), ("weights.npz", _npz({}))], "ok.crnn")
    model = crnn.load_model(ok)
    assert len(model.layers) == MAX_CONFIG_LAYERS


def test_rejects_bad_config(good):
    d, cfg, npz = good["dir"], good["config"], good["npz"]

    def with_cfg(c):
        return _write(d, [("config.json", c), ("weights.npz", npz)])

    _load_fails(_write(d, [("config.json", b"{not json"), ("weights.npz", npz)]), r"JSON")
    _load_fails(_write(d, [("config.json", b"[1, 2]"), ("weights.npz", npz)]), r"object")
    _load_fails(with_cfg(dict(cfg, format="keras")), r"format.*'keras'")
    _load_fails(with_cfg(dict(cfg, format_version=2)), r"format_version.*2.*newer")
    _load_fails(with_cfg(dict(cfg, format_version="1")), r"format_version")
    _load_fails(with_cfg(dict(cfg, class_name="Functional")), r"class_name.*'Functional'")
    bad = copy.deepcopy(cfg)
    bad["config"]["layers"][1]["class_name"] = "ConvLSTM1D"
    _load_fails(with_cfg(bad), r"class_name.*'ConvLSTM1D'")
    bad = copy.deepcopy(cfg)
    bad["config"]["layers"][1]["class_name"] = "__import__"
    _load_fails(with_cfg(bad), r"'__import__'")
    bad = copy.deepcopy(cfg)
    bad["config"]["layers"][1]["config"]["units"] = -3
    _load_fails(with_cfg(bad), r"units")
    bad = copy.deepcopy(cfg)
    bad["config"]["layers"][1]["config"]["evil"] = 1
    _load_fails(with_cfg(bad), r"evil")
    # architecture and manifest disagree / manifest lies about a shape or dtype
    bad = copy.deepcopy(cfg)
    bad["config"]["layers"][1]["config"]["units"] = 6  # no longer fits the Dense after it
    _load_fails(with_cfg(bad), r"invalid model config.*input_dim")
    bad = copy.deepcopy(cfg)
    bad["config"]["layers"][2]["config"]["units"] = 2
    _load_fails(with_cfg(bad), r"weights\[4\].*layer_2/kernel")
    bad = copy.deepcopy(cfg)
    bad["weights"][0]["shape"] = [41, 6]
    _load_fails(with_cfg(bad), r"weights\[0\]")
    bad = copy.deepcopy(cfg)
    bad["weights"][2]["dtype"] = "float64"
    _load_fails(with_cfg(bad), r"weights\[2\]")
    bad = copy.deepcopy(cfg)
    bad["weights"].pop()
    _load_fails(with_cfg(bad), r"weights")


def test_rejects_bad_weights(good, monkeypatch):
    d, cfg = good["dir"], good["config"]
    model = crnn.load_model(d / "good.crnn")
    arrays = {w["name"]: a for w, a in zip(cfg["weights"], model.get_weights())}

    def with_npz(data):
        return _write(d, [("config.json", cfg), ("weights.npz", data)])

    _load_fails(with_npz(b"not a zip"), r"weights\.npz.*not an \.npz")
    wrong = dict(arrays)
    wrong["layer_1/kernel"] = np.zeros((5, 6), np.float32)  # transposed
    _load_fails(with_npz(_npz(wrong)), r"layer_1/kernel.*shape")
    wrong = dict(arrays)
    wrong["layer_1/bias"] = wrong["layer_1/bias"].astype(np.float64)
    _load_fails(with_npz(_npz(wrong)), r"layer_1/bias.*dtype")
    wrong = dict(arrays)
    wrong["layer_2/kernel"] = np.array([{"a": 1}] * 5, dtype=object).reshape(5, 1)
    _load_fails(with_npz(_npz(wrong)), r"layer_2/kernel")  # an object array is never unpickled
    wrong = dict(arrays)
    wrong["layer_0/embeddings"] = wrong["layer_0/embeddings"].astype(np.int32)
    _load_fails(with_npz(_npz(wrong)), r"layer_0/embeddings.*dtype")
    _load_fails(with_npz(_npz(dict(arrays, extra=np.zeros(3)))), r"unexpected member.*extra")
    missing = dict(arrays)
    del missing["layer_2/bias"]
    _load_fails(with_npz(_npz(missing)), r"missing member.*layer_2/bias")
    # an array member cut short inside the npz
    raw = _npz(arrays)
    inner = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(inner, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, data[:-8] if info.filename == "layer_1/kernel.npy" else data)
    _load_fails(with_npz(inner.getvalue()), r"layer_1/kernel.*truncated")
    # oversized: padding beyond what the architecture needs is refused before being read
    _load_fails(with_npz(raw + b"\0" * (1 << 20)), r"weights\.npz.*more than")
    big = _write(d, [("config.json", cfg), ("weights.npz", b"\0" * (4 << 20))], "bomb.crnn")
    _load_fails(big, r"weights\.npz.*more than")
    monkeypatch.setattr(saving, "MAX_CONFIG_BYTES", 100)
    _load_fails(d / "good.crnn", r"config\.json.*more than")


def test_deflate_bomb_is_capped(good):
    """A small compressed member that inflates to far more than the cap is cut off while reading."""
    d, cfg = good["dir"], good["config"]
    path = d / "zbomb.crnn"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(cfg))
        info = zipfile.ZipInfo("weights.npz")
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, b"\0" * (16 << 20))
    assert os.path.getsize(path) < 100_000
    _load_fails(path, r"weights\.npz.*more than")


# ---------------------------------------------------------------------------------------------
# pickling and get_config / from_config
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["classifier", "tagger64", "deep", "stateful"])
def test_pickle_models(name, rng):
    model = _models()[name]
    x = _inputs(name, rng)
    first = model(x)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert clone.get_config() == model.get_config()
        if model.stateful:  # the kept states travel too
            for a, b in zip(model.layers, clone.layers):
                assert a.states[0].tobytes() == b.states[0].tobytes()
            assert clone(x).tobytes() == model(x).tobytes()
            model.reset_states()
            clone.reset_states()
        assert clone(x).tobytes() == (model(x) if model.stateful else first).tobytes()
    # configs survive JSON and rebuild the same architecture
    cfg = json.loads(json.dumps(model.get_config()))
    rebuilt = crnn.Sequential.from_config(cfg)
    assert rebuilt.get_config()["layers"] == model.get_config()["layers"]
    rebuilt.set_weights(model.get_weights())
    if model.stateful:
        model.reset_states()
    assert rebuilt(x).tobytes() == model(x).tobytes()
