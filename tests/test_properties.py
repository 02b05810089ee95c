"""Property tests (hypothesis) of the C core against :mod:`crnn.reference` (issue 7, item 2).

Random shapes (batch 0-9, timesteps 1-12, input_dim 1-12, 1-3 layers of 1-20 units), dtypes,
activations (one for all layers or one per layer), directions, bias on/off, per-sequence lengths,
initial states (none, some entries None, all given), return_sequences / return_state, input
layouts (contiguous, reversed strides, zero-stride broadcast, integer) and thread counts 1 / 2
(``crnn.set_num_threads``, restored afterwards).

Tolerance: :func:`_helpers.derived_tol` (eps * ceil(log2(K * T * L)) * 4 * scale, see the
derivation in ``tests/_helpers.py``) with K the longest dot product of the stack
(:func:`_helpers.stack_k`), T * L the chain of dependent steps and scale the largest expected
magnitude. The oracle runs in float64 on the same (upcast) inputs crnn received, and the weights
come from :func:`_helpers.make_stack_weights` (recurrent spectral norm 0.5), so every value stays
O(1) and the derived tolerance stays under the 1e-5 / 1e-12 ceilings.

Budget: bounded ``max_examples``, ``deadline=None``, no example database; < 40 s in total.
"""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import crnn  # noqa: E402

from _helpers import (ACTIVATIONS, assert_close, assert_unchanged, deep_copy,  # noqa: E402
                      derived_tol, make_stack_weights, stack_k, to64, value_scale)

SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])  # restore once per test


@pytest.fixture
def restore_threads():
    old = crnn.get_num_threads()
    yield
    crnn.set_num_threads(old)


@st.composite
def stack_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    B = draw(st.integers(0, 9))
    T = draw(st.integers(1, 12))
    D = draw(st.integers(1, 12))
    L = draw(st.integers(1, 3))
    units = draw(st.lists(st.integers(1, 20), min_size=L, max_size=L))
    direction = draw(st.sampled_from(["forward", "reverse", "bidirectional"]))
    ndir = 2 if direction == "bidirectional" else 1
    if draw(st.booleans()):
        activation = draw(st.sampled_from(ACTIVATIONS + (None,)))
    else:
        activation = draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=L, max_size=L))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    state_mode = draw(st.sampled_from(["none", "some", "all"]))
    use_lengths = draw(st.booleans())
    layout = draw(st.sampled_from(["contiguous", "reversed", "broadcast", "int", "list"]))
    return_sequences = draw(st.booleans())
    return_state = draw(st.booleans())
    threads = draw(st.sampled_from([1, 2]))
    return dict(dtype=dtype, B=B, T=T, D=D, units=units, direction=direction, ndir=ndir,
                activation=activation, bias=bias, seed=seed, state_mode=state_mode,
                use_lengths=use_lengths, layout=layout, return_sequences=return_sequences,
                return_state=return_state, threads=threads)


def _build(c):
    rng = np.random.default_rng(c["seed"])
    dt, B, T, D = c["dtype"], c["B"], c["T"], c["D"]
    weights = make_stack_weights(rng, D, c["units"], c["ndir"], dt, bias=c["bias"])
    base = rng.uniform(-1, 1, (B, T, D)).astype(dt)
    layout = c["layout"]
    if layout == "contiguous":
        x = base
    elif layout == "reversed":
        x = np.ascontiguousarray(base[::-1, ::-1, ::-1])[::-1, ::-1, ::-1]
    elif layout == "broadcast":
        x = np.broadcast_to(base[:1], base.shape) if B else base
    elif layout == "int":
        x = rng.integers(-1, 2, (B, T, D))
    else:
        x = base.tolist() if B else base
    states = None
    if c["state_mode"] != "none":
        states = []
        for h in c["units"]:
            for _ in range(c["ndir"]):
                if c["state_mode"] == "some" and rng.random() < 0.5:
                    states.append(None)
                else:
                    states.append(rng.uniform(-1, 1, (B, h)).astype(dt))
    lengths = rng.integers(0, T + 1, B) if c["use_lengths"] else None
    return weights, x, states, lengths


@settings(max_examples=1500, **SETTINGS)
@given(c=stack_case())
def test_stack_matches_reference(c, restore_threads):
    weights, x, states, lengths = _build(c)
    crnn.set_num_threads(c["threads"])
    before = deep_copy([np.asarray(x), states, lengths])
    got = crnn.simple_rnn_stack(x, weights, activation=c["activation"], direction=c["direction"],
                                initial_state=states, lengths=lengths,
                                return_sequences=c["return_sequences"],
                                return_state=c["return_state"], dtype=c["dtype"])
    exp = crnn.reference.simple_rnn_stack(to64(np.asarray(x, dtype=c["dtype"])), to64(weights),
                                          activation=c["activation"], direction=c["direction"],
                                          initial_state=to64(states), lengths=lengths,
                                          return_sequences=c["return_sequences"],
                                          return_state=c["return_state"])
    assert_unchanged(before, [np.asarray(x), states, lengths], "inputs")
    L = len(c["units"])
    tol_of = lambda e: derived_tol(c["dtype"], stack_k(c["D"], c["units"], c["ndir"]),  # noqa: E731
                                   c["T"] * L, value_scale(e))
    if c["return_state"]:
        (out, hs), (eout, ehs) = got, exp
        assert len(hs) == len(ehs) == L * c["ndir"]
        for i, (h, eh) in enumerate(zip(hs, ehs)):
            assert_close(h, eh, tol_of(eh), f"state {i}", dtype=c["dtype"])
    else:
        out, eout = got, exp
    assert_close(out, eout, tol_of(eout), "output", dtype=c["dtype"])


@st.composite
def layer_case(draw):
    return dict(dtype=draw(st.sampled_from([np.float32, np.float64])),
                B=draw(st.integers(1, 7)), T=draw(st.integers(1, 10)), D=draw(st.integers(1, 9)),
                H=draw(st.integers(1, 17)), activation=draw(st.sampled_from(ACTIVATIONS)),
                bias=draw(st.booleans()), go_backwards=draw(st.booleans()),
                return_sequences=draw(st.booleans()), with_state=draw(st.booleans()),
                threads=draw(st.sampled_from([1, 2])), seed=draw(st.integers(0, 2**32 - 1)),
                split=draw(st.integers(1, 9)))


@settings(max_examples=600, **SETTINGS)
@given(c=layer_case())
def test_layer_and_streaming_match_reference(c, restore_threads):
    """SimpleRNN layer == reference; a stateful layer fed in chunks == the whole sequence."""
    rng = np.random.default_rng(c["seed"])
    dt, B, T, D, H = c["dtype"], c["B"], c["T"], c["D"], c["H"]
    w = make_stack_weights(rng, D, [H], 1, dt, bias=c["bias"])[0][0]
    x = rng.uniform(-1, 1, (B, T, D)).astype(dt)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dt) if c["with_state"] else None
    crnn.set_num_threads(c["threads"])
    lay = crnn.SimpleRNN(H, activation=c["activation"], use_bias=c["bias"],
                         go_backwards=c["go_backwards"], return_sequences=c["return_sequences"],
                         return_state=True, dtype=dt)
    lay.build((None, None, D))
    lay.set_weights([a for a in w if a is not None])
    out, h = lay(x, initial_state=h0)
    eout, eh = crnn.reference.simple_rnn(to64(x), *to64(w), initial_state=to64(h0),
                                         activation=c["activation"], go_backwards=c["go_backwards"],
                                         return_sequences=c["return_sequences"], return_state=True)
    tol = derived_tol(dt, D + H, T, value_scale(eout))
    assert_close(out, eout, tol, "output", dtype=dt)
    assert_close(h, eh, tol, "state", dtype=dt)

    # Streaming: the same sequence in chunks through a stateful layer (forward direction only:
    # Keras streams go_backwards per chunk, which is a different computation).
    if c["go_backwards"]:
        return
    s = crnn.SimpleRNN(H, activation=c["activation"], use_bias=c["bias"], stateful=True,
                       return_sequences=True, dtype=dt, batch_input_shape=(B, None, D))
    s.set_weights([a for a in w if a is not None])
    if h0 is not None:
        s.reset_states(h0)
    step = max(1, min(c["split"], T))
    chunks = [s(x[:, i:i + step]) for i in range(0, T, step)]
    eseq = crnn.reference.simple_rnn(to64(x), *to64(w), initial_state=to64(h0),
                                     activation=c["activation"], return_sequences=True)
    assert_close(np.concatenate(chunks, axis=1), eseq, derived_tol(dt, D + H, T, value_scale(eseq)),
                 "streamed output", dtype=dt)


@settings(max_examples=300, **SETTINGS)
@given(c=stack_case())
def test_batch_rows_are_independent_and_threads_agree(c, restore_threads):
    """Row i of a batched call == row i run alone; 1 and 2 threads agree within tolerance;
    a fixed thread count is bitwise reproducible."""
    if c["B"] == 0:
        c["B"] = 3
    weights, x, states, lengths = _build(c)
    kw = dict(activation=c["activation"], direction=c["direction"], return_sequences=True,
              dtype=c["dtype"])
    crnn.set_num_threads(1)
    y1 = crnn.simple_rnn_stack(x, weights, initial_state=states, lengths=lengths, **kw)
    crnn.set_num_threads(2)
    y2 = crnn.simple_rnn_stack(x, weights, initial_state=states, lengths=lengths, **kw)
    y2b = crnn.simple_rnn_stack(x, weights, initial_state=states, lengths=lengths, **kw)
    assert y2.tobytes() == y2b.tobytes(), "not bitwise reproducible for a fixed thread count"
    tol = derived_tol(c["dtype"], stack_k(c["D"], c["units"], c["ndir"]),
                      c["T"] * len(c["units"]), value_scale(y1))
    assert_close(y2, y1, 2 * tol, "2 threads vs 1")
    xa = np.asarray(x, dtype=c["dtype"])
    for i in range(xa.shape[0]):
        row_states = None if states is None else [None if s is None else s[i:i + 1] for s in states]
        yi = crnn.simple_rnn_stack(xa[i:i + 1], weights, initial_state=row_states,
                                   lengths=None if lengths is None else lengths[i:i + 1], **kw)
        assert_close(yi[0], y1[i], 2 * tol, f"row {i} alone vs in the batch")
