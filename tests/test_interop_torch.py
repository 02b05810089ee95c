"""crnn.from_torch against real torch.nn.RNN modules.

Tolerance: both sides compute in float32 (or both in float64), in different orders (torch adds
``x W_ih^T + b_ih`` and ``h W_hh^T + b_hh`` separately; crnn adds one pre-summed bias, and
projects all timesteps in one GEMM).  Each step is a dot product of length K = D + H <= 32 with
|terms| <= 1, so one step differs by a few eps * log2(K); recurrent kernels here have norm < 1,
so errors do not grow over steps and layers.  The hidden-state bound is the project's ceiling,
1e-5 absolute in float32 (1e-12 in float64), with values kept O(1) by the weight scales below;
measured differences are ~1e-6.
"""
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install '.[torch]'")
nn = torch.nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import crnn  # noqa: E402
from crnn.interop.torch import TorchRNN  # noqa: E402

TOL32, TOL64 = 1e-5, 1e-12


def _make(rng_seed, D, H, L=1, nonlinearity="tanh", bias=True, batch_first=False,
          bidirectional=False, dtype=torch.float32, scale=0.3):
    torch.manual_seed(rng_seed)
    m = nn.RNN(D, H, num_layers=L, nonlinearity=nonlinearity, bias=bias, batch_first=batch_first,
               bidirectional=bidirectional, dtype=dtype)
    with torch.no_grad():
        for name, p in m.named_parameters():
            # |W_hh| spectral norm < 1 keeps relu states O(1) over many steps and layers.
            p.uniform_(-scale, scale)
            if name.startswith("weight_hh"):
                p.mul_(0.5 / max(1e-6, torch.linalg.matrix_norm(p, ord=2).item()))
    return m.eval()


def _np(t):
    return t.detach().cpu().numpy()


def _check(got, want, tol, what):
    got, want = np.asarray(got), _np(want) if hasattr(want, "detach") else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch {want.shape}"
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0
    assert err <= tol, f"{what}: max abs diff {err:.3g} > {tol:g}"
    return err


GRID = [(L, nl, bias, bf, bi) for L in (1, 3) for nl in ("tanh", "relu") for bias in (True, False)
        for bf in (False, True) for bi in (False, True)]


@pytest.mark.parametrize("L,nonlinearity,bias,batch_first,bidirectional", GRID,
                         ids=[f"L{L}-{nl}-{'b' if b else 'nob'}-{'bf' if bf else 'tf'}-"
                              f"{'bi' if bi else 'uni'}" for L, nl, b, bf, bi in GRID])
def test_module_matches_torch(L, nonlinearity, bias, batch_first, bidirectional):
    D, H, B, T = 5, 7, 4, 11
    m = _make(1, D, H, L, nonlinearity, bias, batch_first, bidirectional)
    rnn = crnn.from_torch(m)
    assert isinstance(rnn, TorchRNN) and rnn.num_layers == L and rnn.batch_first == batch_first
    assert rnn.handle.num_layers == L, "the whole stack must be one compiled handle"
    torch.manual_seed(2)
    x = torch.randn(B, T, D) if batch_first else torch.randn(T, B, D)
    h0 = torch.randn(L * (2 if bidirectional else 1), B, H) * 0.5
    for hx in (None, h0):
        with torch.no_grad():
            want_y, want_h = m(x, hx)
        y, h = rnn(x, hx)                          # torch tensors in
        assert isinstance(y, np.ndarray) and y.dtype == np.float32
        _check(y, want_y, TOL32, "output")
        _check(h, want_h, TOL32, "h_n")
        y2, h2 = rnn(_np(x), None if hx is None else _np(hx))   # NumPy in: same numbers
        assert np.array_equal(y, y2) and np.array_equal(h, h2)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_sequences_and_lengths(batch_first, bidirectional):
    D, H, L = 3, 6, 2
    m = _make(3, D, H, L, "tanh", True, batch_first, bidirectional)
    rnn = crnn.from_torch(m)
    torch.manual_seed(4)
    T, lens = 9, torch.tensor([9, 2, 5, 9, 1])
    B = len(lens)
    x = torch.randn(B, T, D) if batch_first else torch.randn(T, B, D)
    h0 = torch.randn(L * (2 if bidirectional else 1), B, H) * 0.5
    packed = pack_padded_sequence(x, lens, batch_first=batch_first, enforce_sorted=False)
    with torch.no_grad():
        want_p, want_h = m(packed, h0)
    got_p, got_h = rnn(packed, h0)                  # PackedSequence in -> PackedSequence out
    assert type(got_p).__name__ == "PackedSequence"
    assert torch.equal(got_p.batch_sizes, want_p.batch_sizes)
    _check(_np(got_p.data), want_p.data, TOL32, "packed output")
    _check(got_h, want_h, TOL32, "h_n (packed)")
    # The same through lengths= on the padded input (zeros past each length, as torch pads).
    want_y, _ = pad_packed_sequence(want_p, batch_first=batch_first, total_length=T)
    y, h = rnn(x, h0, lengths=lens)
    _check(y, want_y, TOL32, "output (lengths=)")
    _check(h, want_h, TOL32, "h_n (lengths=)")


def test_unbatched_input():
    m = _make(5, 4, 3, 2, "relu", True, False, True)
    rnn = crnn.from_torch(m)
    x = torch.randn(6, 4)
    h0 = torch.randn(4, 3)
    with torch.no_grad():
        want_y, want_h = m(x, h0)
    y, h = rnn(x, h0)
    _check(y, want_y, TOL32, "unbatched output")
    _check(h, want_h, TOL32, "unbatched h_n")


def test_float64_module():
    m = _make(6, 5, 8, 3, "tanh", True, True, True, dtype=torch.float64)
    rnn = crnn.from_torch(m)
    assert rnn.dtype == np.float64
    x = torch.randn(3, 13, 5, dtype=torch.float64)
    with torch.no_grad():
        want_y, want_h = m(x)
    y, h = rnn(x)
    assert y.dtype == np.float64
    _check(y, want_y, TOL64, "float64 output")
    _check(h, want_h, TOL64, "float64 h_n")


def test_dropout_and_train_mode_are_ignored():
    torch.manual_seed(0)
    m = nn.RNN(4, 5, num_layers=2, dropout=0.5).train()
    rnn = crnn.from_torch(m)
    x = torch.randn(7, 2, 4)
    with torch.no_grad():
        want_y, want_h = m.eval()(x)
    _check(rnn(x)[0], want_y, TOL32, "output with dropout=0.5 (inference)")


def test_summed_biases_within_tolerance_and_closer_to_float64():
    """b_ih + b_hh summed in float64, then cast: checked against torch in float32 and float64."""
    D, H, L = 6, 10, 2
    m32 = _make(7, D, H, L, "tanh", True, True, True)
    with torch.no_grad():
        for name, p in m32.named_parameters():
            if name.startswith("bias"):   # trained-model-sized biases, not just O(0.3)
                p.copy_(torch.empty_like(p).uniform_(-2, 2))
    m64 = _make(7, D, H, L, "tanh", True, True, True, dtype=torch.float64)
    m64.load_state_dict({k: v.double() for k, v in m32.state_dict().items()})
    rnn = crnn.from_torch(m32)
    x = torch.randn(5, 17, D)
    with torch.no_grad():
        y32, h32 = m32(x)
        y64, _ = m64(x.double())
    y, h = rnn(x)
    _check(y, y32, TOL32, "output vs torch float32")
    _check(h, h32, TOL32, "h_n vs torch float32")
    # Against the float64 truth crnn (one bias rounding) is as close as torch (two additions).
    err_crnn = np.abs(y - _np(y64)).max()
    err_torch = np.abs(_np(y32) - _np(y64)).max()
    assert err_crnn <= max(2 * err_torch, 2e-6), (err_crnn, err_torch)


def test_state_dict_with_kwargs_and_inferred():
    m = _make(8, 3, 4, 3, "relu", False, True, True)
    sd = m.state_dict()
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        want_y, want_h = m(x)
    full = crnn.from_torch(sd, input_size=3, hidden_size=4, num_layers=3, nonlinearity="relu",
                           bias=False, batch_first=True, bidirectional=True, dropout=0.0)
    # Sizes, layers, bias and directions read off the keys; nonlinearity/batch_first given.
    inferred = crnn.from_torch({k: _np(v) for k, v in sd.items()}, nonlinearity="relu",
                               batch_first=True)
    for rnn in (full, inferred):
        assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bias, rnn.bidirectional) \
            == (3, 4, 3, False, True)
        y, h = rnn(x)
        _check(y, want_y, TOL32, "output from state_dict")
        _check(h, want_h, TOL32, "h_n from state_dict")
    # A sub-module's weights inside a larger state_dict, selected by prefix.
    big = {"embed.weight": torch.zeros(3, 3), **{"rnn." + k: v for k, v in sd.items()},
           "head.weight": torch.zeros(2, 8)}
    sub = crnn.from_torch(big, prefix="rnn.", nonlinearity="relu", batch_first=True)
    assert np.array_equal(sub(x)[0], full(x)[0])
    # state_dict() gives the torch names back; torch loads them.
    m2 = nn.RNN(3, 4, num_layers=3, nonlinearity="relu", bias=False, batch_first=True,
                bidirectional=True)
    m2.load_state_dict({k: torch.from_numpy(v) for k, v in full.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(m2(x)[0], want_y)


def test_pickle_and_repr():
    m = _make(9, 4, 5, 2, "tanh", True, False, True)
    rnn = crnn.from_torch(m)
    clone = pickle.loads(pickle.dumps(rnn))
    x = np.random.default_rng(0).standard_normal((6, 3, 4)).astype(np.float32)
    assert np.array_equal(clone(x)[0], rnn(x)[0])
    assert repr(rnn) == "TorchRNN(4, 5, num_layers=2, bidirectional=True, dtype=float32)"


# ----------------------------------------------------------------------------- errors
def test_bad_state_dicts():
    sd = {k: v for k, v in nn.RNN(3, 4, num_layers=2).state_dict().items()}
    missing = {k: v for k, v in sd.items() if k != "bias_hh_l1"}
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l1'\]"):
        crnn.from_torch(missing)
    with pytest.raises(ValueError, match=r"unexpected keys \['fc.weight'\]"):
        crnn.from_torch({**sd, "fc.weight": torch.zeros(2, 4)})
    bad = dict(sd, weight_ih_l1=torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"weight_ih_l1: got shape \(4, 5\), expected \(4, 4\)"):
        crnn.from_torch(bad)
    with pytest.raises(ValueError, match=r"weight_hh_l0: got shape \(4, 4\), expected \(5, 5\)"):
        crnn.from_torch(sd, hidden_size=5)
    with pytest.raises(ValueError, match="unexpected keys"):
        crnn.from_torch(sd, num_layers=1)
    with pytest.raises(ValueError, match="missing keys"):
        crnn.from_torch(sd, bidirectional=True)
    with pytest.raises(ValueError, match="no weight_ih_l0"):
        crnn.from_torch({"foo": torch.zeros(2)})
    with pytest.raises(ValueError, match="prefix 'enc.'"):
        crnn.from_torch(sd, prefix="enc.")
    with pytest.raises(ValueError, match="proj_size: got 2, but only nn.LSTM has a projection"):
        crnn.from_torch(sd, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity: got 'gelu'"):
        crnn.from_torch(sd, nonlinearity="gelu")
    with pytest.raises(TypeError, match="unexpected keyword"):
        crnn.from_torch(sd, hiden_size=4)
    with pytest.raises(TypeError, match="expected a torch.nn.RNN, LSTM, GRU, .* or its state_dict"):
        crnn.from_torch(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="hidden_size: got 5, but the module has hidden_size=4"):
        crnn.from_torch(nn.RNN(3, 4), hidden_size=5)
    # tensors that are not real dense weights are refused by key, never cast
    lstm = dict(nn.LSTM(3, 4).state_dict())
    for key, value, match in [
            ("weight_ih_l0", lstm["weight_ih_l0"].to(torch.complex64), "complex64 tensor"),
            ("weight_hh_l0", lstm["weight_hh_l0"] > 0, "torch.bool tensor"),
            ("weight_ih_l0", lstm["weight_ih_l0"].to_sparse(), "sparse_coo"),
            ("weight_ih_l0", torch.empty(16, 3, device="meta"), "device meta")]:
        with pytest.raises(TypeError, match=f"{key}: got .*{match}"):
            crnn.from_torch(dict(lstm, **{key: value}))
    with pytest.raises(ValueError, match=r"weight_ih_l0 has shape \(1, 16, 3\), expected a 2-D"):
        crnn.from_torch(dict(lstm, weight_ih_l0=lstm["weight_ih_l0"][None]))
    cell = dict(nn.GRUCell(3, 4).state_dict())
    with pytest.raises(ValueError, match=r"weight_hh has shape \(1, 12, 4\), expected a 2-D"):
        crnn.from_torch(dict(cell, weight_hh=cell["weight_hh"][None]))


def test_bad_call_arguments():
    rnn = crnn.from_torch(nn.RNN(3, 4, num_layers=2))
    with pytest.raises(ValueError, match=r"hx: got shape \(1, 2, 4\), expected \(2, 2, 4\)"):
        rnn(np.zeros((5, 2, 3)), np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="input: got shape"):
        rnn(np.zeros((5, 2, 3, 1)))
    with pytest.raises(ValueError, match="input_dim 7"):
        rnn(np.zeros((5, 2, 7)))
    with pytest.raises(ValueError, match="lengths"):
        rnn(np.zeros((5, 2, 3)), lengths=[5, 6])


def test_import_crnn_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, crnn; crnn.from_torch; crnn.load_onnx; crnn.to_onnx; crnn.from_keras; "
            "crnn.load_keras; bad = [m for m in ('torch', 'keras', 'onnx', 'h5py', 'onnxruntime') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
