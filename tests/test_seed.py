"""Every example of the seed tutorial (wikidocs "순환 신경망(RNN)"), run as written with crnn in
place of tensorflow.keras:

    from tensorflow.keras.layers import SimpleRNN   ->  from crnn import SimpleRNN
    from tensorflow.keras.models import Sequential  ->  from crnn import Sequential

including the quirky ``model.add(SimpleRNN(3, batch_input_shape=(8,2,10)), return_sequences=True)``
whose intent (output (8, 2, 3)) crnn honours.
"""
import re

import numpy as np
import pytest

from _helpers import assert_close, derived_tol, describe, run_isolated, run_module

# The tutorial's three summaries, verbatim (trailing whitespace is ignored when comparing).
SEED_SUMMARIES = [
    '''Model: "sequential"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
simple_rnn (SimpleRNN)       (None, 3)                 42        
=================================================================
Total params: 42
Trainable params: 42
Non-trainable params: 0
_________________________________________________________________''',
    '''Model: "sequential_1"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
simple_rnn_1 (SimpleRNN)     (8, 3)                    42        
=================================================================
Total params: 42
Trainable params: 42
Non-trainable params: 0
_________________________________________________________________''',
    '''Model: "sequential_2"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
simple_rnn_2 (SimpleRNN)     (8, 2, 3)                 42        
=================================================================
Total params: 42
Trainable params: 42
Non-trainable params: 0
_________________________________________________________________''',
]


def _lines(text):
    return [l.rstrip() for l in text.strip("\n").splitlines()]


def _check_summary(printed, expected):
    """Exact comparison, except the auto-numbered suffix of the model and layer names (tests
    share a process, so earlier tests have used up "sequential", "simple_rnn", ...). The layer
    row must still have Keras 2's column layout: shape at column 29, params at column 55."""
    got, want = _lines(printed), _lines(expected)
    assert len(got) == len(want), "\n".join(got)
    for g, w in zip(got, want):
        if w.startswith("Model: "):
            assert re.fullmatch(r'Model: "sequential(_\d+)?"', g), g
        elif w.startswith("simple_rnn"):
            name = re.match(r"(simple_rnn(?:_\d+)?) \(SimpleRNN\)", g)
            assert name, g
            shape = w[29:55].rstrip()
            expect = f"{name.group(1)} (SimpleRNN)".ljust(29) + shape.ljust(26) + "42"
            assert g == expect, f"\n{g!r}\n{expect!r}"
        else:
            assert g == w


def test_keras_example_1_input_shape(capsys):
    from crnn import SimpleRNN
    from crnn import Sequential

    model = Sequential()
    model.add(SimpleRNN(3, input_shape=(2, 10)))
    # model.add(SimpleRNN(3, input_length=2, input_dim=10))와 동일함.
    model.summary()
    _check_summary(capsys.readouterr().out, SEED_SUMMARIES[0])
    assert model.output_shape == (None, 3)
    assert model.count_params() == 42
    assert model.predict(np.random.default_rng(0).random((5, 2, 10))).shape == (5, 3)

    same = Sequential()
    same.add(SimpleRNN(3, input_length=2, input_dim=10))
    same.summary()
    _check_summary(capsys.readouterr().out, SEED_SUMMARIES[0])


def test_keras_example_2_batch_input_shape(capsys):
    from crnn import SimpleRNN
    from crnn import Sequential

    model = Sequential()
    model.add(SimpleRNN(3, batch_input_shape=(8, 2, 10)))
    model.summary()
    _check_summary(capsys.readouterr().out, SEED_SUMMARIES[1])
    assert model.output_shape == (8, 3)
    assert model.count_params() == 42
    assert model.predict(np.zeros((8, 2, 10))).shape == (8, 3)


def test_keras_example_3_quirky_return_sequences(capsys, rng):
    from crnn import SimpleRNN
    from crnn import Sequential
    from crnn import reference

    model = Sequential()
    model.add(SimpleRNN(3, batch_input_shape=(8, 2, 10)), return_sequences=True)
    model.summary()
    _check_summary(capsys.readouterr().out, SEED_SUMMARIES[2])
    assert model.output_shape == (8, 2, 3)
    assert model.count_params() == 42
    x = rng.random((8, 2, 10)).astype(np.float32)
    y = model.predict(x)
    assert y.shape == (8, 2, 3)
    k, r, b = model.get_weights()
    exp = reference.simple_rnn(x.astype(np.float64), k.astype(np.float64), r.astype(np.float64),
                               b.astype(np.float64), return_sequences=True)
    assert_close(y, exp, derived_tol(np.float32, 13, 2), "quirky example values", np.float32)


def test_keras_summaries_exact_in_a_fresh_process():
    """A fresh interpreter runs the three examples in the tutorial's order: the output must be
    the tutorial's, character for character (up to trailing whitespace), names included."""
    code = """
        from crnn.models import Sequential   # tensorflow.keras.models
        from crnn.layers import SimpleRNN    # tensorflow.keras.layers

        model = Sequential()
        model.add(SimpleRNN(3, input_shape=(2,10)))
        model.summary()
        model = Sequential()
        model.add(SimpleRNN(3, batch_input_shape=(8,2,10)))
        model.summary()
        model = Sequential()
        model.add(SimpleRNN(3, batch_input_shape=(8,2,10)), return_sequences=True)
        model.summary()
    """
    proc = run_isolated(code, timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert _lines(proc.stdout) == _lines("\n".join(SEED_SUMMARIES)), describe(proc)


def test_numpy_walkthrough_equals_crnn(capsys):
    import crnn
    from crnn import reference

    np.random.seed(0)
    # --- the tutorial's code, as written ---
    timesteps = 10
    input_dim = 4
    hidden_units = 8

    # 입력에 해당되는 2D 텐서
    inputs = np.random.random((timesteps, input_dim))

    # 초기 은닉 상태는 0(벡터)로 초기화
    hidden_state_t = np.zeros((hidden_units,))

    print('초기 은닉 상태 :', hidden_state_t)

    Wx = np.random.random((hidden_units, input_dim))  # (8, 4)크기의 2D 텐서 생성. 입력에 대한 가중치.
    Wh = np.random.random((hidden_units, hidden_units))  # (8, 8)크기의 2D 텐서 생성. 은닉 상태에 대한 가중치.
    b = np.random.random((hidden_units,))  # (8,)크기의 1D 텐서 생성. 이 값은 편향(bias).

    print('가중치 Wx의 크기(shape) :', np.shape(Wx))
    print('가중치 Wh의 크기(shape) :', np.shape(Wh))
    print('편향의 크기(shape) :', np.shape(b))

    total_hidden_states = []

    # 각 시점 별 입력값.
    for input_t in inputs:

        # Wx * Xt + Wh * Ht-1 + b(bias)
        output_t = np.tanh(np.dot(Wx, input_t) + np.dot(Wh, hidden_state_t) + b)

        # 각 시점 t별 메모리 셀의 출력의 크기는 (timestep t, output_dim)
        # 각 시점의 은닉 상태의 값을 계속해서 누적
        total_hidden_states.append(list(output_t))
        hidden_state_t = output_t

    # 출력 시 값을 깔끔하게 해주는 용도.
    total_hidden_states = np.stack(total_hidden_states, axis=0)

    # (timesteps, output_dim)
    print('모든 시점의 은닉 상태 :')
    print(total_hidden_states)
    # --- end of the tutorial's code ---

    out = capsys.readouterr().out
    assert "초기 은닉 상태 : [0. 0. 0. 0. 0. 0. 0. 0.]" in out
    assert "가중치 Wx의 크기(shape) : (8, 4)" in out
    assert "가중치 Wh의 크기(shape) : (8, 8)" in out
    assert "편향의 크기(shape) : (8,)" in out
    assert total_hidden_states.shape == (10, 8)

    # kernel = Wx.T, recurrent_kernel = Wh.T; one sequence of the batch.
    x = inputs[None]
    tol = derived_tol(np.float64, input_dim + hidden_units, timesteps)
    ref = reference.simple_rnn(x, Wx.T, Wh.T, b, return_sequences=True)
    assert_close(ref[0], total_hidden_states, tol, "reference vs tutorial loop", np.float64)
    got = crnn.simple_rnn(x, Wx.T, Wh.T, b, return_sequences=True)
    assert_close(got[0], total_hidden_states, tol, "crnn.simple_rnn vs tutorial loop", np.float64)
    last, h = crnn.simple_rnn(x, Wx.T, Wh.T, b, return_state=True)
    assert_close(last[0], total_hidden_states[-1], tol, "last", np.float64)
    assert_close(h[0], hidden_state_t, tol, "final state", np.float64)
    # the same through the layer API in float64
    layer = crnn.SimpleRNN(hidden_units, return_sequences=True, input_shape=(timesteps, input_dim),
                           dtype="float64")
    layer.set_weights([Wx.T, Wh.T, b])
    assert_close(layer(x)[0], total_hidden_states, tol, "SimpleRNN layer vs tutorial loop", np.float64)


def test_other_spellings_of_the_input_shape():
    from crnn import SimpleRNN
    from crnn import Sequential

    hidden_units, timesteps, input_dim = 8, 10, 4
    M, N = timesteps, input_dim
    model = Sequential()
    # 추가 인자를 사용할 때
    model.add(SimpleRNN(hidden_units, input_shape=(timesteps, input_dim)))
    other = Sequential()
    # 다른 표기
    other.add(SimpleRNN(hidden_units, input_length=M, input_dim=N))
    for m in (model, other):
        assert m.output_shape == (None, hidden_units)
        assert m.count_params() == input_dim * hidden_units + hidden_units ** 2 + hidden_units
        assert m.predict(np.ones((3, timesteps, input_dim))).shape == (3, hidden_units)


def test_deep_rnn_example(rng):
    from crnn import SimpleRNN
    from crnn import Sequential
    from crnn import reference

    hidden_units = 8
    model = Sequential()
    model.add(SimpleRNN(hidden_units, input_length=10, input_dim=5, return_sequences=True))
    model.add(SimpleRNN(hidden_units, return_sequences=True))

    assert model.output_shape == (None, 10, hidden_units)
    assert model.count_params() == (5 * 8 + 64 + 8) + (8 * 8 + 64 + 8)
    for B in (1, 4):
        x = rng.random((B, 10, 5)).astype(np.float32)
        y = model.predict(x)
        assert y.shape == (B, 10, hidden_units) and y.dtype == np.float32
        w = [a.astype(np.float64) for a in model.get_weights()]
        h1 = reference.simple_rnn(x.astype(np.float64), *w[:3], return_sequences=True)
        h2 = reference.simple_rnn(h1, *w[3:], return_sequences=True)
        # Keras default weights: orthogonal recurrent kernels (norm 1) with tanh: |h| <= 1.
        tol = derived_tol(np.float32, 16, 20)
        assert_close(y, h2, tol, f"deep RNN B={B}", np.float32)
        assert_close(model(x), h2, tol, f"deep RNN __call__ B={B}", np.float32)


def test_python_dash_m_crnn_runs():
    proc = run_module("crnn")
    assert proc.returncode == 0, describe(proc)
    out = _lines(proc.stdout)
    for text in SEED_SUMMARIES:  # the three summaries, names included, as the tutorial prints them
        for line in _lines(text):
            assert line in out, f"missing summary line {line!r}\n{describe(proc)}"


def test_python_dash_m_crnn_help():
    proc = run_module("crnn", "--help", timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert "usage" in proc.stdout.lower()
    assert "Model:" not in proc.stdout, "--help must not run the examples"
