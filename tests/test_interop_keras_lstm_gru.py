"""crnn.from_keras / crnn.load_keras on Keras 3 LSTM and GRU models: live, ``.keras`` files and
legacy ``.h5`` files (``model.save("model.h5")``).

Keras runs on its torch backend (``KERAS_BACKEND=torch``, set before keras is imported).
Tolerance 1e-5 absolute (the project ceiling on hidden states): Keras and crnn both compute in
float32 with different summation orders; one step is a dot product of K = D + H <= 16 terms,
a few eps * log2(K) ~ 1e-6, and the weights keep every pre-activation O(1) (recurrent kernels
of spectral norm 0.5) so errors do not grow over the steps; an LSTM's cell state sums at most
T = 8 terms of size <= 1.  Heads (Dense, softmax over O(1) inputs, K <= 16) add ~K * eps.
float64 models: 1e-12 against crnn.reference.  Measured: ~2e-7.
"""
import json

import numpy as np
import pytest

import crnn
from crnn.interop.keras import KerasConversionError

h5py = pytest.importorskip("h5py", reason="h5py not installed: pip install '.[keras]'")
from test_interop_keras import _both_ways, _close, _randomize, _x, keras  # noqa: E402,F401

TOL32, TOL64 = 1e-5, 1e-12
pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy"),
              pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")]


# ============================================================================ stacks
def test_lstm_and_gru_stack(keras, tmp_path):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((8, 3)),
        L.LSTM(5, return_sequences=True),
        L.GRU(4, return_sequences=True, reset_after=False, go_backwards=True),
        L.GRU(6, activation="relu", recurrent_activation="hard_sigmoid", return_sequences=True),
        L.LSTM(3, recurrent_activation="hard_sigmoid", use_bias=False, go_backwards=True,
               return_sequences=True),
        L.SimpleRNN(4, return_sequences=True),
        L.LSTM(4, activation="linear"),
        L.Dense(2, activation="softmax")])
    _randomize(m)
    models = _both_ways(m, _x((4, 8, 3)), tmp_path)
    loaded = models["h5"]
    assert [type(l).__name__ for l in loaded.layers] == \
        ["LSTM", "GRU", "GRU", "LSTM", "SimpleRNN", "LSTM", "Dense"]
    gru = loaded.layers[1]
    assert (gru.reset_after, loaded.layers[2].reset_after) == (False, True)
    assert loaded.layers[2].recurrent_activation == "hard_sigmoid"
    assert loaded.count_params() == m.count_params()


@pytest.mark.parametrize("kind,kw", [("LSTM", {}), ("GRU", {"reset_after": True}),
                                     ("GRU", {"reset_after": False})])
@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(keras, tmp_path, kind, kw, merge_mode, return_sequences):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((6, 3)),
        L.Bidirectional(getattr(L, kind)(4, return_sequences=return_sequences, **kw),
                        merge_mode=merge_mode),
        L.Dense(2)])
    _randomize(m, seed=2)
    _both_ways(m, _x((3, 6, 3), seed=3), tmp_path)


def test_masks_embedding_and_masking(keras, tmp_path):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        L.Embedding(30, 6, mask_zero=True),
        L.Bidirectional(L.LSTM(5, return_sequences=True)),
        L.GRU(4, return_sequences=True),
        L.LSTM(3, go_backwards=True),
        L.Dense(2, activation="sigmoid")])
    _randomize(m, seed=6)
    ids = np.random.default_rng(7).integers(1, 30, (5, 8))
    ids[0, 5:] = 0
    ids[1, 2:] = 0
    ids[2, 3] = 0            # a masked step inside
    _both_ways(m, ids, tmp_path)
    m2 = keras.Sequential([keras.Input((7, 3)), L.Masking(0.0),
                           L.GRU(4, return_sequences=True, zero_output_for_mask=True),
                           L.LSTM(3, return_sequences=True)])
    _randomize(m2, seed=8)
    x = _x((3, 7, 3), seed=9)
    x[0, 4:] = 0
    x[1, 1] = 0
    _both_ways(m2, x, tmp_path)


def test_functional_and_float64(keras, tmp_path):
    L = keras.layers
    inp = keras.Input((None, 4), dtype="float64")
    h = L.LSTM(5, return_sequences=True, dtype="float64")(inp)
    out = L.GRU(3, dtype="float64")(h)
    m = keras.Model(inp, out)
    _randomize(m, seed=10)
    x = _x((3, 9, 4), dtype=np.float64)
    # Keras's torch backend is only float32-accurate on float64 models (see
    # test_interop_keras.py): Keras at float32 tolerance, crnn's float64 against the reference.
    models = _both_ways(m, x, tmp_path, tol=TOL32)
    w = m.get_weights()
    ref = crnn.reference.rnn_stack(x, [[w[0:3]], [[w[3], w[4], w[5][0], w[5][1]]]],
                                   cell=["lstm", "gru"], return_sequences=False)
    for how, model in models.items():
        y = model(x)
        assert y.dtype == np.float64, how
        _close(y, ref, TOL64, f"{how}: float64 vs reference")


# ============================================================================ hand-written .h5
def _lstm_config(name, units, **kw):
    cfg = {"name": name, "units": units, "activation": "tanh", "recurrent_activation": "sigmoid",
           "use_bias": True, "unit_forget_bias": True, "return_sequences": False,
           "dtype": "float32"}
    cfg.update(kw)
    return {"class_name": "LSTM", "config": cfg}


def _write_h5(path, config, weights, version="2.15.0", weight_names=None):
    """A legacy HDF5 model file as Keras 2 (tf.keras) writes it: byte-string attributes,
    weight names with a ':0' suffix."""
    with h5py.File(path, "w") as f:
        if config is not None:
            f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = version.encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [n.encode() for n in weights]
        for layer, arrays in weights.items():
            lg = g.create_group(layer)
            names = weight_names or [f"{layer}/lstm_cell/{w}:0" for w in
                                     ("kernel", "recurrent_kernel", "bias")][:len(arrays)]
            lg.attrs["weight_names"] = [n.encode() for n in names]
            for n, a in zip(names, arrays):
                lg[n] = a


def _hand_model(rng, **lstm_kw):
    k = rng.uniform(-0.5, 0.5, (3, 16))
    r = rng.uniform(-0.2, 0.2, (4, 16))
    b = rng.uniform(-0.5, 0.5, 16)
    config = {"class_name": "Sequential", "config": {"name": "hand", "layers": [
        {"class_name": "InputLayer",
         "config": {"name": "in", "batch_input_shape": [None, 5, 3], "dtype": "float32"}},
        _lstm_config("lstm", 4, **lstm_kw)]}}
    return config, {"lstm": [k, r, b]}


def test_hand_written_keras2_style_h5(tmp_path):
    rng = np.random.default_rng(12)
    config, weights = _hand_model(rng)
    path = str(tmp_path / "k2.h5")
    _write_h5(path, config, weights)
    model = crnn.load_keras(path)
    x = rng.uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    want = crnn.reference.lstm(x.astype(np.float64), *weights["lstm"])
    _close(model(x), want, TOL32, "Keras 2 style .h5")


def test_keras2_hard_sigmoid_is_refused(tmp_path):
    """Keras 2's hard_sigmoid is clip(0.2x + 0.5), Keras 3's relu6(x + 3) / 6 (crnn's)."""
    rng = np.random.default_rng(13)
    config, weights = _hand_model(rng, recurrent_activation="hard_sigmoid")
    old = str(tmp_path / "k2.h5")
    _write_h5(old, config, weights, version="2.15.0")
    with pytest.raises(KerasConversionError, match=r"'lstm' \(LSTM\): got recurrent_activation "
                                                   r"'hard_sigmoid' in a file written by Keras 2"):
        crnn.load_keras(old)
    new = str(tmp_path / "k3.h5")
    _write_h5(new, config, weights, version="3.15.1")
    x = rng.uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    want = crnn.reference.lstm(x.astype(np.float64), *weights["lstm"],
                               recurrent_activation="hard_sigmoid")
    _close(crnn.load_keras(new)(x), want, TOL32, "Keras 3 hard_sigmoid")


def test_malformed_h5_files(tmp_path):
    rng = np.random.default_rng(14)
    config, weights = _hand_model(rng)
    cases = {}
    p = tmp_path / "no_config.h5"
    _write_h5(p, None, weights)
    cases[p] = "has no model_config attribute: not a Keras model file"
    p = tmp_path / "no_weights.h5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
    cases[p] = "has no model_weights group"
    p = tmp_path / "missing_layer.h5"
    _write_h5(p, config, {"other": weights["lstm"]})
    cases[p] = r"'lstm' \(LSTM\): has no weights in /model_weights"
    p = tmp_path / "two_names.h5"
    _write_h5(p, config, {"lstm": weights["lstm"][:2]})
    cases[p] = r"'lstm' \(LSTM\): /model_weights/lstm: attribute weight_names has shape \(2,\), " \
               r"expected a list of 3 strings"
    p = tmp_path / "wrong_shape.h5"
    _write_h5(p, config, {"lstm": [weights["lstm"][1], weights["lstm"][1], weights["lstm"][2]]})
    cases[p] = r"kernel:0: got shape \(4, 16\), expected \(3, 16\)"
    p = tmp_path / "bad_json.h5"
    _write_h5(p, config, weights)
    with h5py.File(p, "a") as f:
        f.attrs["model_config"] = b"{not json"
    cases[p] = "attribute model_config: not valid JSON"
    p = tmp_path / "soft_link.h5"
    _write_h5(p, config, weights)
    with h5py.File(p, "a") as f:
        del f["model_weights/lstm/lstm/lstm_cell/kernel:0"]
        f["model_weights/lstm/lstm/lstm_cell/kernel:0"] = h5py.SoftLink("/elsewhere")
    cases[p] = r"kernel:0: is a soft link to '/elsewhere'"
    p = tmp_path / "external_link.h5"
    _write_h5(p, config, weights)
    with h5py.File(p, "a") as f:
        del f["model_weights/lstm"]
        f["model_weights/lstm"] = h5py.ExternalLink("other.h5", "/x")
    cases[p] = r"/model_weights/lstm: is an external link to 'other.h5'"
    p = tmp_path / "huge_config.h5"
    _write_h5(p, config, weights)
    with h5py.File(p, "a") as f:
        f.attrs["model_config"] = " " * (16 * 2**20 + 1)       # variable-length, as Keras writes
    cases[p] = r"attribute model_config holds 16777217 bytes, more than 16777216"
    p = tmp_path / "many_configs.h5"
    _write_h5(p, config, weights)
    with h5py.File(p, "a") as f:
        f.attrs["model_config"] = [json.dumps(config)] * 1000
    cases[p] = r"attribute model_config has shape \(1000,\), expected one string"
    # Data outside the file, or declared but never written, is refused before it is read.
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(48, dtype=np.float32).tobytes())
    kernel = "model_weights/lstm/lstm/lstm_cell/kernel:0"
    p = tmp_path / "external_storage.h5"
    _write_h5(p, config, weights)
    with h5py.File(p, "a") as f:
        del f[kernel]
        f.create_dataset(kernel, (3, 16), "f4", external=[(str(secret), 0, 192)])
    cases[p] = r"kernel:0: uses external storage"
    p = tmp_path / "virtual.h5"
    _write_h5(p, config, weights)
    with h5py.File(p, "a") as f:
        del f[kernel]
        layout = h5py.VirtualLayout((3, 16), "f4")
        layout[:] = h5py.VirtualSource(str(tmp_path / "no_config.h5"), "x", (3, 16))
        f.create_virtual_dataset(kernel, layout)
    cases[p] = r"kernel:0: is a virtual dataset"
    p = tmp_path / "unwritten.h5"
    _write_h5(p, config, weights)
    with h5py.File(p, "a") as f:
        del f[kernel]
        f.create_dataset(kernel, (3, 16), "f4")
    cases[p] = r"kernel:0: holds 0 bytes of its 192"
    failures = []
    for path, match in cases.items():
        try:
            crnn.load_keras(str(path))
        except KerasConversionError as err:
            import re
            if not re.search(match, str(err)):
                failures.append(f"{path.name}: {err}")
        else:
            failures.append(f"{path.name}: loaded")
    assert not failures, "\n".join(failures)


def test_unsupported_lstm_gru_options_named(keras):
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 3)), L.GRU(4, activation="elu", name="g")])
    with pytest.raises(KerasConversionError, match=r"'g' \(GRU\): got activation 'elu'"):
        crnn.from_keras(m)
    m = keras.Sequential([keras.Input((5, 3)), L.LSTM(4, recurrent_activation="softsign")])
    with pytest.raises(KerasConversionError, match=r"recurrent_activation 'softsign'"):
        crnn.from_keras(m)
