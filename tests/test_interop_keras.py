"""crnn.from_keras / crnn.load_keras against real Keras 3 models and .keras files.

Keras runs on its torch backend here (no TensorFlow); ``KERAS_BACKEND`` is set before keras is
imported.  Tolerance: Keras and crnn both compute in float32 (different summation orders), with
weights drawn so every value stays O(1) (recurrent kernels of spectral norm 0.5): hidden states
agree within the project ceiling of 1e-5 absolute; heads (Dense/softmax/sigmoid over O(1) inputs
with O(1) weights, K <= 16) add at most K * eps ~ 2e-6, so the same 1e-5 bounds every model
output.  float64 models: 1e-12 against crnn.reference (Keras's torch backend itself is only
float32-accurate on them).
"""
import io
import json
import os
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

import crnn
from crnn.interop.keras import KerasConversionError

h5py = pytest.importorskip("h5py", reason="h5py not installed: pip install '.[keras]'")

TOL32, TOL64 = 1e-5, 1e-12
# Keras's own NumPy 2 deprecation noise (its torch tensors' __array__ lacks copy=).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy")


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("torch", reason="Keras tests use the torch backend: pip install '.[torch]'")
    os.environ["KERAS_BACKEND"] = "torch"
    k = pytest.importorskip("keras", reason="Keras not installed: pip install '.[keras]'")
    if k.backend.backend() != "torch":
        pytest.skip(f"keras was already imported with the {k.backend.backend()!r} backend")
    return k


def _randomize(model, seed=0):
    """O(1)-keeping weights: U(-0.4, 0.4), recurrent kernels rescaled to spectral norm 0.5."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        w = rng.uniform(-0.4, 0.4, tuple(v.shape))
        if "recurrent" in v.path:
            w *= 0.5 / np.linalg.norm(w, 2)
        v.assign(w.astype(v.dtype))


def _close(got, want, tol, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != keras {want.shape}"
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    assert err <= tol, f"{what}: max abs diff {err:.3g} > {tol:g}"


def _both_ways(keras_model, x, tmp_path, tol=TOL32):
    """from_keras(live model) and load_keras of the saved files (.keras, and the legacy .h5
    format; from a path and from a file object) all equal Keras's predict.  Returns
    ``{how: crnn model}``."""
    want = np.asarray(keras_model.predict(x, verbose=0))
    models = {"from_keras": crnn.from_keras(keras_model)}
    for ext in ("keras", "h5"):
        path = str(tmp_path / f"model.{ext}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # Keras calls .h5 "legacy"
            keras_model.save(path)
        models[ext] = crnn.load_keras(path)
        with open(path, "rb") as f:
            models[ext + " (file object)"] = crnn.load_keras(io.BytesIO(f.read()))
    for how, model in models.items():
        _close(model(x), want, tol, how)
    return models


def _x(shape, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(dtype)


# ============================================================================ SimpleRNN stacks
def test_simple_rnn_stack(keras, tmp_path):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((7, 3)),
        L.SimpleRNN(5, return_sequences=True),
        L.SimpleRNN(4, activation="relu", go_backwards=True, return_sequences=True,
                    use_bias=False),
        L.SimpleRNN(6, activation="sigmoid", return_sequences=True),
        L.SimpleRNN(3, activation="linear", go_backwards=True)])
    _randomize(m)
    models = _both_ways(m, _x((4, 7, 3)), tmp_path)
    for loaded in models.values():
        assert [type(l).__name__ for l in loaded.layers] == ["SimpleRNN"] * 4
        assert loaded.count_params() == m.count_params()


def test_functional_chain_and_float64(keras, tmp_path):
    L = keras.layers
    inp = keras.Input((None, 4), dtype="float64", name="seq")
    h = L.SimpleRNN(6, return_sequences=True, dtype="float64")(inp)
    out = L.SimpleRNN(2, dtype="float64")(h)
    m = keras.Model(inp, out)
    _randomize(m)
    x = _x((3, 9, 4), dtype=np.float64)
    # Keras 3.15's torch backend is only float32-accurate on this float64 model (measured
    # ~7e-8 from the float64 reference), so Keras is compared at float32 tolerance and the
    # float64 result against crnn.reference at 1e-12.
    models = _both_ways(m, x, tmp_path, tol=TOL32)
    w = m.get_weights()
    ref = crnn.reference.simple_rnn_stack(x, [[w[0:3]], [w[3:6]]], return_sequences=False)
    for model in models.values():
        y = model(x)
        assert y.dtype == np.float64
        _close(y, ref, TOL64, "float64 vs reference")


def test_layer_names_not_paths_decide_weights(keras, tmp_path):
    """The HDF5 path is class-numbered (simple_rnn, simple_rnn_1); names may be anything."""
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 2)),
                          L.SimpleRNN(3, return_sequences=True, name="zeta"),
                          L.SimpleRNN(3, return_sequences=True, name="alpha"),
                          L.SimpleRNN(4, name="simple_rnn_1")])
    _randomize(m, seed=3)
    models = _both_ways(m, _x((2, 5, 2)), tmp_path)
    for loaded in models.values():
        assert [l.name for l in loaded.layers] == ["zeta", "alpha", "simple_rnn_1"]


# ============================================================================ without Keras
def test_load_keras_without_keras_or_tensorflow(keras, tmp_path):
    """.keras and legacy .h5 files load with h5py alone."""
    L = keras.layers
    m = keras.Sequential([keras.Input((6, 3)), L.SimpleRNN(4, return_sequences=True),
                          L.LSTM(4, return_sequences=True), L.Bidirectional(L.GRU(2))])
    _randomize(m, seed=4)
    x = _x((3, 6, 3))
    for ext in ("keras", "h5"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.save(str(tmp_path / f"m.{ext}"))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", np.asarray(m.predict(x, verbose=0)))
    code = (
        "import sys\n"
        "for mod in ('keras', 'tensorflow', 'torch', 'jax'):\n"
        "    sys.modules[mod] = None   # importing any of them now fails\n"
        "import numpy as np, crnn\n"
        f"d = {str(tmp_path)!r}\n"
        "for ext in ('keras', 'h5'):\n"
        "    y = crnn.load_keras(d + '/m.' + ext)(np.load(d + '/x.npy'))\n"
        "    assert np.abs(y - np.load(d + '/want.npy')).max() <= 1e-5, ext\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ============================================================================ rejections
def test_unsupported_layers_named(keras, tmp_path):
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 3)), L.LSTM(4, return_sequences=True),
                          L.Conv1D(2, 3), L.GlobalAveragePooling1D()])
    with pytest.raises(KerasConversionError,
                       match=r"support: 'conv1d' \(Conv1D\), "
                             r"'global_average_pooling1d' \(GlobalAveragePooling1D\)\."):
        crnn.from_keras(m)
    path = str(tmp_path / "conv.keras")
    m.save(path)
    with pytest.raises(KerasConversionError, match="Conv1D"):
        crnn.load_keras(path)


def test_unsupported_activation_and_graphs(keras):
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 3)), L.SimpleRNN(4, activation="elu")])
    with pytest.raises(KerasConversionError, match=r"activation 'elu'"):
        crnn.from_keras(m)
    a, b = keras.Input((5, 3)), keras.Input((5, 3))
    two = keras.Model([a, b], L.SimpleRNN(2)(L.Add()([a, b])))
    with pytest.raises(KerasConversionError, match="2 inputs"):
        crnn.from_keras(two)
    x = keras.Input((5, 3))
    h = L.SimpleRNN(3, return_sequences=True)(x)
    branchy = keras.Model(x, L.SimpleRNN(2)(L.Add()([h, h])))
    with pytest.raises(KerasConversionError, match="takes 2 tensors"):
        crnn.from_keras(branchy)
    with pytest.raises(TypeError, match="expected a Keras model"):
        crnn.from_keras(object())
    # A mask computed in the model (not by a Masking / Embedding layer of the chain) is
    # refused: crnn rebuilds masks from those layers, and this one was once silently dropped.
    x = keras.Input((5, 3))
    mask = keras.ops.any(keras.ops.not_equal(x, 0.5), axis=-1)
    explicit = keras.Model(x, L.LSTM(4)(x, mask=mask))
    with pytest.raises(KerasConversionError, match="'lstm.*receives a mask computed in the model"):
        crnn.from_keras(explicit)
    # A layer object as the activation is refused by its class: its config's "name" is the
    # layer's name, and ReLU(max_value=0.1) named "relu" once ran as a plain relu.
    for act, cls in [(L.ReLU(max_value=0.1, name="relu"), "ReLU"),
                     (L.LeakyReLU(negative_slope=0.5, name="linear"), "LeakyReLU"),
                     (L.Activation("sigmoid", name="tanh"), "Activation")]:
        for layer in (L.SimpleRNN(3, activation=act), L.Dense(3, activation=act)):
            m = keras.Sequential([keras.Input((5, 3)), layer])
            with pytest.raises(KerasConversionError, match=f"activation '{cls} object'"):
                crnn.from_keras(m)


def _write_keras(path, config, weights=None, members=("config.json", "model.weights.h5")):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for key, arr in (weights or {}).items():
            f[key] = arr
    with zipfile.ZipFile(path, "w") as z:
        if "config.json" in members:
            z.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        if "metadata.json" in members:
            z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        if "model.weights.h5" in members:
            z.writestr("model.weights.h5", buf.getvalue())


def _rnn_config(name, units, **kw):
    cfg = {"name": name, "units": units, "activation": "tanh", "use_bias": True,
           "return_sequences": False, "dtype": "float32"}
    cfg.update(kw)
    return {"class_name": "SimpleRNN", "config": cfg}


def test_hand_written_file_and_malformed_files(tmp_path):
    """A .keras archive built here (no Keras at all), then broken ones."""
    rng = np.random.default_rng(0)
    k, r, b = rng.uniform(-0.5, 0.5, (3, 4)), rng.uniform(-0.2, 0.2, (4, 4)), rng.uniform(-0.5, 0.5, 4)
    config = {"class_name": "Sequential", "config": {"name": "hand", "layers": [
        {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 5, 3]}},
        _rnn_config("rnn", 4)]}}
    weights = {"layers/simple_rnn/cell/vars/0": k, "layers/simple_rnn/cell/vars/1": r,
               "layers/simple_rnn/cell/vars/2": b}
    good = tmp_path / "good.keras"
    _write_keras(good, config, weights)
    model = crnn.load_keras(str(good))
    x = rng.uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    want = crnn.reference.simple_rnn(x.astype(np.float64), k, r, b)
    _close(model(x), want, TOL32, "hand-written .keras")

    not_zip = tmp_path / "bad.keras"
    not_zip.write_bytes(b"definitely not a zip")
    with pytest.raises(KerasConversionError, match="not a Keras model file"):
        crnn.load_keras(str(not_zip))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(KerasConversionError, match="is not a valid HDF5 file"):
        crnn.load_keras(str(truncated))
    no_weights = tmp_path / "no_weights.keras"
    _write_keras(no_weights, config, members=("config.json",))
    with pytest.raises(KerasConversionError, match=r"lacks \['model.weights.h5'\]"):
        crnn.load_keras(str(no_weights))
    bad_json = tmp_path / "bad_json.keras"
    _write_keras(bad_json, "{not json", weights)
    with pytest.raises(KerasConversionError, match="not valid UTF-8 JSON"):
        crnn.load_keras(str(bad_json))
    missing_var = tmp_path / "missing_var.keras"
    _write_keras(missing_var, config, {"layers/dense/vars/0": k})
    with pytest.raises(KerasConversionError, match="'rnn' \\(SimpleRNN\\): has no weights"):
        crnn.load_keras(str(missing_var))
    wrong_shape = tmp_path / "wrong_shape.keras"
    _write_keras(wrong_shape, config, dict(weights, **{"layers/simple_rnn/cell/vars/1": k}))
    with pytest.raises(KerasConversionError,
                       match=r"vars/1: got shape \(3, 4\), expected \(4, 4\)"):
        crnn.load_keras(str(wrong_shape))
    subclassed = tmp_path / "subclassed.keras"
    _write_keras(subclassed, {"class_name": "MyModel", "config": {}}, weights)
    with pytest.raises(KerasConversionError, match="subclassed"):
        crnn.load_keras(str(subclassed))
    with pytest.raises(FileNotFoundError):
        crnn.load_keras(str(tmp_path / "nope.keras"))


# ============================================================================ the full layer set
def test_sentiment_classifier_embedding_mask_bidirectional(keras, tmp_path):
    """Many-to-one: Embedding(mask_zero) -> Bidirectional -> SimpleRNN -> Dense(softmax)."""
    L = keras.layers
    m = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        L.Embedding(40, 8, mask_zero=True),
        L.Bidirectional(L.SimpleRNN(6, return_sequences=True)),
        L.Dropout(0.5),
        L.SimpleRNN(5, activation="relu"),
        L.Dense(3, activation="softmax")])
    _randomize(m, seed=5)
    rng = np.random.default_rng(6)
    ids = rng.integers(1, 40, (5, 9))
    ids[0, 6:] = 0          # padded sequences
    ids[1, 3:] = 0
    ids[2, 4] = 0           # a masked step inside a sequence
    models = _both_ways(m, ids, tmp_path)
    assert [type(l).__name__ for l in models["h5"].layers] == \
        ["Embedding", "Bidirectional", "SimpleRNN", "Dense"]


def test_tagger_masking_dense_activation(keras, tmp_path):
    """Many-to-many: Masking -> SimpleRNN(return_sequences) -> Dense per step -> Activation."""
    L = keras.layers
    m = keras.Sequential([
        keras.Input((8, 4)),
        L.Masking(0.0),
        L.SimpleRNN(7, return_sequences=True),
        L.Dense(5, activation="tanh"),
        L.Dense(3),
        L.Activation("softmax")])
    _randomize(m, seed=7)
    x = _x((4, 8, 4), seed=8)
    x[0, 5:] = 0.0
    x[1, 2] = 0.0
    _both_ways(m, x, tmp_path)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_merge_modes(keras, tmp_path, merge_mode, return_sequences):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((6, 3)),
        L.Bidirectional(L.SimpleRNN(4, activation="relu", return_sequences=return_sequences),
                        merge_mode=merge_mode),
        L.Dense(2, activation="sigmoid")])
    _randomize(m, seed=9)
    _both_ways(m, _x((3, 6, 3), seed=10), tmp_path)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_bidirectional_with_own_backward_layer(keras, tmp_path, kind):
    L = keras.layers
    fwd = getattr(L, kind)(4, return_sequences=True)
    bwd = getattr(L, kind)(4, activation="sigmoid", return_sequences=True, go_backwards=True)
    m = keras.Sequential([keras.Input((5, 2)), L.Bidirectional(fwd, backward_layer=bwd),
                          L.SimpleRNN(3)])
    _randomize(m, seed=11)
    _both_ways(m, _x((2, 5, 2), seed=12), tmp_path)


def test_functional_masking_chain(keras, tmp_path):
    """Keras records a Masking layer's mask as NotEqual/Any ops in a functional graph."""
    L = keras.layers
    inp = keras.Input((7, 3))
    h = L.Masking(0.0)(inp)
    h = L.SimpleRNN(4, return_sequences=True, use_bias=False)(h)
    h = L.SimpleRNN(4, go_backwards=True)(h)
    out = L.Activation("sigmoid")(L.Dense(2)(h))
    m = keras.Model(inp, out)
    _randomize(m, seed=13)
    x = _x((3, 7, 3), seed=14)
    x[0, 4:] = 0
    _both_ways(m, x, tmp_path)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_zero_output_for_mask_is_carried_over(keras, tmp_path, return_sequences):
    """Keras zero_output_for_mask=True: masked steps output 0 instead of the previous output."""
    L = keras.layers
    m = keras.Sequential([keras.Input((6, 3)), L.Masking(0.0),
                          L.SimpleRNN(4, return_sequences=return_sequences,
                                      zero_output_for_mask=True)])
    _randomize(m, seed=15)
    x = _x((4, 6, 3), seed=16)
    x[0, 4:] = 0.0       # masked tail: the last step is masked
    x[1, 2] = 0.0        # a masked step inside
    x[2, :] = 0.0        # all masked
    models = _both_ways(m, x, tmp_path)
    for model in models.values():
        assert model.layers[-1].zero_output_for_mask
