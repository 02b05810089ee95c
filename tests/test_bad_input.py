"""Bad input: clear exceptions naming the argument ("<arg>: got X, expected Y"), never a crash,
never a wrong answer, never a modified input.

Cases that could need huge memory, or crash the interpreter if mishandled, run in a child
process (capped with RLIMIT_AS), so a segfault fails one test instead of killing pytest.
"""
import numpy as np
import pytest

import crnn

from _helpers import assert_unchanged, deep_copy, describe, make_layer_weights, make_stack_weights, run_isolated

B, T, D, H = 3, 4, 5, 6


@pytest.fixture
def data(rng):
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    w = make_stack_weights(rng, D, [H], 1, np.float32)
    return x, w


def _entry_points(w):
    """Callables taking x, for every way crnn can be given an input."""
    k, r, b = w[0][0]
    layer = crnn.SimpleRNN(H, input_shape=(None, D))
    layer.set_weights([k, r, b])
    model = crnn.Sequential()
    model.add(crnn.SimpleRNN(H, input_shape=(None, D)))
    model.set_weights([k, r, b])
    handle = crnn._core.RNN(w, dtype="float32")
    return {
        "simple_rnn_stack": lambda x, **kw: crnn.simple_rnn_stack(x, w, **kw),
        "simple_rnn": lambda x, **kw: crnn.simple_rnn(x, k, r, b, **kw),
        "RNN.forward": lambda x, **kw: handle.forward(x, **kw),
        "SimpleRNN": lambda x, **kw: layer(x, **kw),
        "Sequential": lambda x, **kw: model(x, **kw),
        "Sequential.predict": lambda x, **kw: model.predict(x, **kw),
    }


# ---------------------------------------------------------------------------------------------
# x: rank, width, dtype
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(T, D), (D,), (), (1, B, T, D)])
def test_wrong_rank(shape, data):
    x0, w = data
    x = np.ones(shape, np.float32)
    for name, f in _entry_points(w).items():
        with pytest.raises(ValueError, match=r"\bx\b"):
            f(x)
    assert_unchanged(np.ones(shape, np.float32), x)


@pytest.mark.parametrize("width", [D - 1, D + 1, 1])
def test_input_dim_not_matching_weights(width, data):
    _, w = data
    x = np.ones((B, T, width), np.float32)
    for name, f in _entry_points(w).items():
        with pytest.raises(ValueError, match=r"\bx\b|input_dim|kernel"):
            f(x)


@pytest.mark.parametrize("bad", [
    np.ones((B, T, D), np.complex64),
    np.ones((B, T, D), np.complex128),
    np.ones((B, T, D), bool),
    np.full((B, T, D), "a"),
    np.full((B, T, D), 1.0, dtype=object),
    np.array([[[None] * D] * T] * B),
    np.ones((B, T, D), "datetime64[s]"),
], ids=["complex64", "complex128", "bool", "str", "object-float", "object-None", "datetime"])
def test_x_non_real_dtype_is_type_error(bad, data):
    _, w = data
    before = deep_copy(bad)
    for name, f in _entry_points(w).items():
        with pytest.raises(TypeError, match=r"\bx\b"):
            f(bad)
    assert np.array_equal(before, bad)


def test_ragged_x_is_rejected(data):
    _, w = data
    ragged = [[[0.0] * D, [0.0] * (D - 1)]]
    for name, f in _entry_points(w).items():
        with pytest.raises((ValueError, TypeError), match=r"\bx\b"):
            f(ragged)


def test_zero_timesteps_layer_and_model(data):
    _, w = data
    for name, f in _entry_points(w).items():
        with pytest.raises(ValueError, match=r"\bx\b|timesteps"):
            f(np.zeros((B, 0, D), np.float32))


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------
def test_bad_stack_weights(rng, data):
    x, _ = data
    k, r, b = make_layer_weights(rng, D, H, np.float32)
    k2, r2, b2 = make_layer_weights(rng, H, H, np.float32)
    cases = {
        "kernel wrong input dim": ([[[k[:-1], r, b]]], r"\bx\b|kernel|input"),
        "kernel wrong units": ([[[k[:, :-1], r, b]]], r"kernel|recurrent"),
        "kernel 1-D": ([[[k[0], r, b]]], r"kernel"),
        "recurrent not square": ([[[k, r[:, :-1], b]]], r"recurrent_kernel"),
        "recurrent 3-D": ([[[k, r[None], b]]], r"recurrent_kernel"),
        "bias wrong length": ([[[k, r, b[:-1]]]], r"bias"),
        "bias 2-D": ([[[k, r, b[None]]]], r"bias"),
        "layer 2 kernel wrong": ([[[k, r, b]], [[k, r2, b2]]], r"kernel"),
        "no layers": ([], r"weights"),
        "missing recurrent": ([[[k]]], r"weights|recurrent"),
    }
    for what, (w, pattern) in cases.items():
        before = deep_copy(w)
        with pytest.raises(ValueError, match=pattern):
            crnn.simple_rnn_stack(x, w)
        if what != "kernel wrong input dim":  # a valid handle for D-1 inputs
            with pytest.raises(ValueError, match=pattern):
                crnn._core.RNN(w)
        assert_unchanged(before, w, what)
    # bidirectional needs two directions per layer, forward exactly one
    with pytest.raises(ValueError, match=r"weights|direction"):
        crnn.simple_rnn_stack(x, [[[k, r, b]]], direction="bidirectional")
    with pytest.raises(ValueError, match=r"weights|direction"):
        crnn.simple_rnn_stack(x, [[[k, r, b], [k, r, b]]], direction="forward")
    # both directions of one layer must have the same units
    k3, r3, b3 = make_layer_weights(rng, D, H + 1, np.float32)
    with pytest.raises(ValueError, match=r"recurrent_kernel|units|kernel"):
        crnn.simple_rnn_stack(x, [[[k, r, b], [k3, r3, b3]]], direction="bidirectional")
    for bad in (np.ones((D, H), np.complex64), np.ones((D, H), bool), np.full((D, H), "1")):
        with pytest.raises(TypeError, match=r"kernel"):
            crnn.simple_rnn(x, bad, r, b)
    with pytest.raises(TypeError, match=r"recurrent_kernel"):
        crnn.simple_rnn(x, k, r.astype(np.complex64), b)
    with pytest.raises(TypeError, match=r"bias"):
        crnn.simple_rnn(x, k, r, b.astype(bool))
    with pytest.raises(TypeError, match=r"weights"):
        crnn.simple_rnn_stack(x, "weights")
    with pytest.raises((TypeError, ValueError), match=r"weights"):
        crnn.simple_rnn_stack(x, 3)


def test_set_weights_wrong_count_and_shapes(rng):
    layer = crnn.SimpleRNN(H, input_shape=(None, D), seed=0)
    good = layer.get_weights()
    k, r, b = good
    cases = [
        ([k, r], r"weights|3|expected"),
        ([k, r, b, b], r"weights|3|expected"),
        ([], r"weights|expected"),
        ([k.T, r, b], r"kernel"),
        ([k[:-1], r, b], r"kernel"),
        ([k, r[:-1], b], r"recurrent_kernel"),
        ([k, r, b[:-1]], r"bias"),
        ([k, r, b[None]], r"bias"),
    ]
    for bad, pattern in cases:
        before = deep_copy(bad)
        with pytest.raises(ValueError, match=pattern):
            layer.set_weights(bad)
        assert_unchanged(before, bad)
        # a failed set_weights leaves the layer as it was
        for g, w in zip(layer.get_weights(), good):
            assert g.tobytes() == w.tobytes()
    with pytest.raises(TypeError, match=r"kernel|weights"):
        layer.set_weights([k.astype(np.complex64), r, b])
    nb = crnn.SimpleRNN(H, use_bias=False, input_shape=(None, D))
    with pytest.raises(ValueError, match=r"weights"):
        nb.set_weights([k, r, b])
    model = crnn.Sequential()
    model.add(crnn.SimpleRNN(H, input_shape=(None, D), return_sequences=True))
    model.add(crnn.SimpleRNN(2))
    mw = model.get_weights()
    with pytest.raises(ValueError, match=r"weights"):
        model.set_weights(mw[:-1])
    with pytest.raises(ValueError, match=r"kernel"):
        model.set_weights([mw[0], mw[1], mw[2], mw[3][:-1], mw[4], mw[5]])
    for g, w in zip(model.get_weights(), mw):
        assert g.tobytes() == w.tobytes()


# ---------------------------------------------------------------------------------------------
# constructor arguments
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["softmax", "gelu", "TANH", "", 5])
def test_unknown_activation(act, data):
    x, w = data
    with pytest.raises((ValueError, TypeError), match=r"activation"):
        crnn.SimpleRNN(3, activation=act)
    with pytest.raises((ValueError, TypeError), match=r"activation"):
        crnn.simple_rnn_stack(x, w, activation=act)
    with pytest.raises((ValueError, TypeError), match=r"activation"):
        crnn.simple_rnn(x, *w[0][0], activation=act)
    with pytest.raises((ValueError, TypeError), match=r"activation"):
        crnn._core.RNN(w, activation=act)


def test_activation_list_wrong_length(data):
    x, w = data
    with pytest.raises(ValueError, match=r"activation"):
        crnn.simple_rnn_stack(x, w, activation=["tanh", "relu"])


@pytest.mark.parametrize("direction", ["backward", "bidir", "", None, 1])
def test_unknown_direction(direction, data):
    x, w = data
    with pytest.raises((ValueError, TypeError), match=r"direction"):
        crnn.simple_rnn_stack(x, w, direction=direction)


@pytest.mark.parametrize("units", [0, -1, -(2**40)])
def test_units_non_positive(units):
    with pytest.raises(ValueError, match=r"units"):
        crnn.SimpleRNN(units)


@pytest.mark.parametrize("units", [True, False, 3.0, 2.5, "3", None, [3], np.float32(3)])
def test_units_wrong_type(units):
    with pytest.raises((TypeError, ValueError), match=r"units"):
        crnn.SimpleRNN(units)


@pytest.mark.parametrize("dtype", ["float16", "int32", "complex64", "bogus", np.float16])
def test_bad_dtype(dtype, data):
    x, w = data
    with pytest.raises((TypeError, ValueError), match=r"dtype"):
        crnn.SimpleRNN(3, dtype=dtype)
    with pytest.raises((TypeError, ValueError), match=r"dtype"):
        crnn.simple_rnn_stack(x, w, dtype=dtype)


def test_unknown_keyword():
    with pytest.raises(TypeError):
        crnn.SimpleRNN(3, unknown_argument=1)
    model = crnn.Sequential()
    with pytest.raises(TypeError):
        model.add(crnn.SimpleRNN(3, input_shape=(2, 10)), not_an_argument=True)


def test_bad_input_shapes_in_constructor():
    for kw in ({"input_shape": (2, 10, 3)}, {"input_shape": (2,)}, {"batch_input_shape": (2, 10)},
               {"input_shape": (2, 0)}, {"input_dim": 0}, {"input_shape": "2,10"}):
        with pytest.raises((ValueError, TypeError), match=r"input|shape|dim"):
            crnn.SimpleRNN(3, **kw)


def test_set_num_threads_bad():
    old = crnn.get_num_threads()
    for n in (0, -1):
        with pytest.raises(ValueError, match=r"\bn\b|thread"):
            crnn.set_num_threads(n)
    for n in (1.5, "2", None, True, np.float64(2)):
        with pytest.raises((TypeError, ValueError)):
            crnn.set_num_threads(n)
    assert crnn.get_num_threads() == old
    try:  # NumPy integers are ints here as everywhere else
        crnn.set_num_threads(np.int64(2))
        assert crnn.get_num_threads() == 2
    finally:
        crnn.set_num_threads(old)


# ---------------------------------------------------------------------------------------------
# initial_state and lengths
# ---------------------------------------------------------------------------------------------
def test_mismatched_initial_state(rng, data):
    x, w = data
    k, r, b = w[0][0]
    handle = crnn._core.RNN(w)
    layer = crnn.SimpleRNN(H, input_shape=(None, D))
    for bad in (np.zeros((B + 1, H), np.float32), np.zeros((B, H + 1), np.float32),
                np.zeros((H,), np.float32), np.zeros((1, B, H), np.float32)):
        before = bad.copy()
        with pytest.raises(ValueError, match=r"initial_state"):
            crnn.simple_rnn(x, k, r, b, bad)
        with pytest.raises(ValueError, match=r"initial_state"):
            crnn.simple_rnn_stack(x, w, initial_state=[bad])
        with pytest.raises(ValueError, match=r"initial_state"):
            handle.forward(x, initial_state=[bad])
        with pytest.raises(ValueError, match=r"initial_state"):
            layer(x, initial_state=bad)
        assert_unchanged(before, bad)
    good = np.zeros((B, H), np.float32)
    with pytest.raises(ValueError, match=r"initial_state"):
        crnn.simple_rnn_stack(x, w, initial_state=[good, good])  # one entry expected
    w2 = make_stack_weights(rng, D, [H, H], 2, np.float32)
    with pytest.raises(ValueError, match=r"initial_state"):
        crnn.simple_rnn_stack(x, w2, direction="bidirectional", initial_state=[good] * 3)
    with pytest.raises(TypeError, match=r"initial_state"):
        crnn.simple_rnn(x, k, r, b, good.astype(np.complex64))
    with pytest.raises(TypeError, match=r"initial_state"):
        crnn.simple_rnn(x, k, r, b, good.astype(bool))


def test_bad_lengths(data):
    x, w = data
    handle = crnn._core.RNN(w)
    for bad in (np.full(B + 1, T), np.full(B - 1, T), np.full((B, 1), T), np.array(T),
                np.full(B, T, dtype=np.float64), np.full(B, True), [T] * (B - 1),
                np.array([T, T + 1, 1]), np.array([0, -1, T]), np.array([T, 2**40, 1]),
                np.array([-(2**63), 1, 1])):
        before = deep_copy(np.asarray(bad))
        with pytest.raises((ValueError, TypeError), match=r"lengths"):
            crnn.simple_rnn_stack(x, w, lengths=bad)
        with pytest.raises((ValueError, TypeError), match=r"lengths"):
            handle.forward(x, lengths=bad)
        assert_unchanged(before, np.asarray(bad))


# ---------------------------------------------------------------------------------------------
# huge sizes: in a child process with an address-space cap
# ---------------------------------------------------------------------------------------------
_OK_OR_CLEAN_ERROR = """
def outcome(f, check):
    try:
        res = f()
    except (MemoryError, ValueError) as e:
        print("CLEAN", type(e).__name__, str(e)[:200])
        return
    check(res)
    print("CORRECT")
"""


def test_huge_units_never_crash():
    code = _OK_OR_CLEAN_ERROR + """
import numpy as np, crnn
def make():
    layer = crnn.SimpleRNN(10**12)
    return layer(np.ones((1, 1, 1), np.float32))
outcome(make, lambda r: None)
def make2():
    layer = crnn.SimpleRNN(10**12, input_shape=(2, 10))
    return layer
outcome(make2, lambda r: None)
def make3():
    model = crnn.Sequential()
    model.add(crnn.SimpleRNN(10**12, input_shape=(2, 10)))
    return model
outcome(make3, lambda r: None)
"""
    proc = run_isolated(code, timeout=120, mem_limit_gib=4)
    assert proc.returncode == 0, describe(proc)
    lines = proc.stdout.split("\n")
    assert sum(l.startswith("CLEAN") for l in lines) == 3, describe(proc)


def test_out_of_memory_names_x():
    """A broadcast x whose C-contiguous copy, or an output, that does not fit in memory (the child
    may use 4 GiB): a MemoryError that names x and the size, not NumPy's bare one."""
    code = """
import numpy as np, crnn
k, r = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
for x in (np.broadcast_to(np.float32(0), (2**15, 2**16, 1)),   # its copy: 8 GiB
          np.broadcast_to(np.float16(0), (2**15, 2**16, 1))):  # float32 copy: 8 GiB
    try:
        crnn.simple_rnn(x, k, r)
    except MemoryError as e:
        print("NAMED" if str(e).startswith("x: got shape") and "8.0 GiB" in str(e) else "BARE", e)
x = np.zeros((2**14, 2**14, 1), np.float32)                    # 1 GiB; its outputs: 4 GiB
try:
    crnn.simple_rnn(x, np.ones((1, 4), np.float32), np.zeros((4, 4), np.float32),
                    return_sequences=True)
except MemoryError as e:
    print("NAMED" if str(e).startswith("x: got shape") and "4.0 GiB" in str(e) else "BARE", e)
"""
    proc = run_isolated(code, timeout=120, mem_limit_gib=4)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.count("NAMED") == 3, describe(proc)


def test_huge_recurrent_kernel_broadcast():
    """A (65536, 65536) zero-stride recurrent kernel: 2**32 elements, more than a 32-bit BLAS
    int can count, and 16 GiB if copied; costs nothing to pass. Must give a clean MemoryError /
    ValueError (the child may use 4 GiB) or the right answer (x @ k + b with T=1, h0=0)."""
    code = _OK_OR_CLEAN_ERROR + """
import numpy as np, crnn
H = 2**16
k = np.broadcast_to(np.float32(0.5), (1, H))
r = np.broadcast_to(np.float32(0.0), (H, H))
b = np.broadcast_to(np.float32(0.25), (H,))
x = np.ones((1, 1, 1), np.float32)
def check(res):
    assert res.shape == (1, H), res.shape
    assert np.allclose(res, np.tanh(0.75), atol=1e-6), res[:, :5]
outcome(lambda: crnn.simple_rnn(x, k, r, b), check)
outcome(lambda: crnn._core.RNN([[[k, r, b]]]).forward(x, return_sequences=False), check)
"""
    proc = run_isolated(code, timeout=300, mem_limit_gib=4)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.count("CLEAN") + proc.stdout.count("CORRECT") == 2, describe(proc)


@pytest.mark.parametrize("rs", [False, True])
def test_batch_times_time_over_2_31(rs):
    """x broadcast to (65536, 32769, 1): B*T = 2**31 + 2**16 rows for the input-projection GEMM,
    past a 32-bit BLAS's M. The same sequence in every row, so the right answer is cheap: one
    scalar recurrence. Accept MemoryError/ValueError (the child may use 4 GiB), or exactly that;
    never a crash, never garbage."""
    code = _OK_OR_CLEAN_ERROR + f"""
import numpy as np, crnn
B, T = 2**16, 2**15 + 1
x = np.broadcast_to(np.float32(0.5), (B, T, 1))
k = np.array([[0.8]], np.float32); r = np.array([[0.5]], np.float32); b = np.array([0.1], np.float32)
h = 0.0
hs = np.empty(T)
for t in range(T):
    h = np.tanh(0.5 * 0.8 + 0.5 * h + 0.1)
    hs[t] = h
def check(res):
    out = res[0] if isinstance(res, tuple) else res
    if {rs}:
        assert out.shape == (B, T, 1)
        assert np.allclose(out[0, :, 0], hs, atol=1e-5) and np.allclose(out[-1, :, 0], hs, atol=1e-5)
    else:
        assert out.shape == (B, 1)
        assert np.allclose(out, h, atol=1e-5), (out.min(), out.max(), h)
outcome(lambda: crnn.simple_rnn_stack(x, [[[k, r, b]]], return_sequences={rs}), check)
"""
    proc = run_isolated(code, timeout=300, mem_limit_gib=4)
    assert proc.returncode == 0, describe(proc)
    assert ("CLEAN" in proc.stdout) or ("CORRECT" in proc.stdout), describe(proc)


def test_big_kernel_rows_over_2_31_elements():
    """kernel (2**31 // 8 + 1, 8) broadcast: D*H just over 2**31 elements."""
    code = _OK_OR_CLEAN_ERROR + """
import numpy as np, crnn
D, H = 2**31 // 8 + 1, 8
k = np.broadcast_to(np.float32(1e-9), (D, H))
r = np.zeros((H, H), np.float32)
x = np.broadcast_to(np.float32(1.0), (1, 1, D))
def check(res):
    assert res.shape == (1, H)
    assert np.allclose(res, np.tanh(D * 1e-9), atol=1e-4), (res, np.tanh(D * 1e-9))
outcome(lambda: crnn.simple_rnn(x, k, r), check)
"""
    proc = run_isolated(code, timeout=300, mem_limit_gib=4)
    assert proc.returncode == 0, describe(proc)
    assert ("CLEAN" in proc.stdout) or ("CORRECT" in proc.stdout), describe(proc)


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_stateful_batch_too_large_for_its_states_is_refused(cls):
    """A stateful layer allocates its states from batch_input_shape: a batch whose states cannot
    exist is refused with a ValueError naming the argument, never attempted (it once tried to
    allocate 12 TiB and raised MemoryError)."""
    layer_cls = getattr(crnn, cls)
    for batch in (2**40, 2**31):
        with pytest.raises(ValueError, match=rf"batch_input_shape: got batch size {batch}"):
            layer_cls(4, stateful=True, batch_input_shape=(batch, None, 3))
    big = layer_cls(4, batch_input_shape=(2**40, None, 3))  # not stateful: nothing to allocate
    assert not big.stateful and big.built


# ---------------------------------------------------------------------------------------------
# the core handle and the Dense kernel called directly
# ---------------------------------------------------------------------------------------------

def test_unbuilt_handle_raises_instead_of_crashing():
    """A handle whose RNN.__init__ never ran (a subclass that skips it, RNN.__new__) has no C
    handle: every entry point says so (plan() used to pass NULL to the core: a segfault)."""
    code = """
        import numpy as np
        from crnn._core import RNN

        class Forgetful(RNN):
            def __init__(self):
                pass

        for h in (Forgetful(), RNN.__new__(RNN)):
            assert repr(h) == "RNN(<not built>)", repr(h)
            for call in (lambda: h.plan(1, 1), lambda: h.workspace_size(1, 1),
                         lambda: h.forward(np.zeros((1, 1, 1), np.float32))):
                try:
                    call()
                except RuntimeError as err:
                    assert "never built" in str(err), err
                else:
                    raise AssertionError("no error")
        print("ok")
    """
    proc = run_isolated(code, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


def test_dense_forward_checks_kernel_and_bias():
    """crnn._core.dense_forward reads only what it has checked: a kernel of another dtype, rank
    or layout, or a bias of another length, is converted or refused (it used to be trusted: a
    float16 kernel overflowed the output, a short bias was read past its end)."""
    code = """
        import numpy as np
        from crnn import _core
        x = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
        k = np.arange(20, dtype=np.float32).reshape(4, 5) / 10
        want = x @ k
        for kern in (np.asfortranarray(k), k.astype(">f4"), k[:, ::-1][:, ::-1]):
            y = _core.dense_forward(x, kern, None)
            assert y.dtype == np.float32 and np.abs(y - want).max() < 1e-5
        y = _core.dense_forward(x, k.astype(np.float64), np.ones(5))
        want64 = x.astype(np.float64) @ k.astype(np.float64) + 1
        assert y.dtype == np.float64 and np.abs(y - want64).max() < 1e-12
        bad = [(k.astype(np.float16), None, TypeError, "kernel: got dtype float16"),
               (k.astype(np.int64), None, TypeError, "kernel: got dtype int64"),
               (k.astype(bool), None, TypeError, "kernel: got dtype bool"),
               (k[0], None, ValueError, r"kernel: got shape \\(5,\\)"),
               (k, np.zeros(1, np.float32), ValueError, r"bias: got shape \\(1,\\), expected \\(5,\\)"),
               (k, np.zeros((1, 5), np.float32), ValueError, "bias: got shape"),
               (k, np.zeros(5, complex), TypeError, "bias: got dtype complex")]
        import re
        for kern, bias, exc, msg in bad:
            try:
                _core.dense_forward(x, kern, bias)
            except exc as err:
                assert re.search(msg, str(err)), (msg, err)
            else:
                raise AssertionError(msg)
        for _ in range(20):  # the float16 case corrupted the heap only after a few calls
            try:
                _core.dense_forward(np.ones((256, 4), np.float32), np.ones((4, 256), np.float16), None)
            except TypeError:
                pass
        print("ok")
    """
    proc = run_isolated(code, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


def test_empty_lengths_list_at_batch_zero(data):
    x, w = data
    h = crnn._core.RNN(w)
    assert h.forward(x[:0], lengths=[]).shape == (0, T, H)
    # the reference takes the same arguments and returns the same (empty) result
    assert crnn.reference.rnn_stack(x[:0], w, lengths=[]).shape == (0, T, H)
    with pytest.raises(ValueError, match=r"lengths: got int64 array of shape \(0,\), expected "):
        h.forward(x, lengths=[])
    with pytest.raises(ValueError, match=r"lengths: got int64 shape \(0,\), expected int"):
        crnn.reference.rnn_stack(x, w, lengths=[])
