"""crnn.from_torch against real torch.nn.LSTM, nn.GRU and the three cells.

Tolerance: 1e-5 absolute in float32 (the project ceiling on hidden states), 1e-12 in float64.
Both sides compute in the same dtype, in different orders: torch adds ``x W_ih^T + b_ih`` and
``h W_hh^T + b_hh`` separately (crnn one pre-summed bias; GRU's ``b_hn`` apart, as torch), and
crnn projects all timesteps in one GEMM.  One step is a dot product of K = D + H <= 16 terms
with |terms| <= 1: a few eps * log2(K) ~ 1e-6 (float32); the weights below keep every
pre-activation O(1) (recurrent kernels of norm <= 0.5), so errors do not grow over the steps and
layers.  An LSTM's cell state c sums at most T = 9 terms of size <= 1 (|c| <= 9, error a few
eps * T * |c| ~ 1e-5 at worst; measured ~2e-7).  With ``proj_size``, crnn runs on the products
``W_hr^T W_hh^T`` formed in float64 and rounded once, and projects with ``W_hr`` (K = H more
terms): the same bounds.  Measured differences: ~1e-7 (float32), ~1e-16 (float64).
"""
import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install '.[torch]'")
nn = torch.nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import crnn  # noqa: E402
from crnn.interop.torch import (TorchGRU, TorchGRUCell, TorchLSTM, TorchLSTMCell,  # noqa: E402
                                TorchRNNCell)

TOL32, TOL64 = 1e-5, 1e-12
# torch's own notice that it has no oneDNN kernel for projections.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")


def _init(m, seed, scale=0.4):
    """Weights U(-scale, scale); recurrent gate blocks (and projections) of norm <= 0.5."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.uniform_(-scale, scale)
            if name.startswith("weight_hh") or name.startswith("weight_hr"):
                cols = p.shape[1]
                for blk in p.split(cols if name.startswith("weight_hh") else p.shape[0]):
                    blk.mul_(0.5 / max(1e-6, torch.linalg.matrix_norm(blk, ord=2).item()))
    return m.eval()


def _np(t):
    return t.detach().cpu().numpy()


def _check(got, want, tol, what):
    got = np.asarray(got)
    want = _np(want) if hasattr(want, "detach") else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != torch {want.dtype}"
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)), initial=0.0))
    assert err <= tol, f"{what}: max abs diff {err:.3g} > {tol:g}"


def _states(m, B, seed, dtype=torch.float32):
    """A random hx for module m: h0, or (h0, c0) for an LSTM."""
    torch.manual_seed(seed)
    n = m.num_layers * (2 if m.bidirectional else 1)
    out = getattr(m, "proj_size", 0) or m.hidden_size
    h0 = torch.randn(n, B, out, dtype=dtype) * 0.5
    if isinstance(m, nn.LSTM):
        return h0, torch.randn(n, B, m.hidden_size, dtype=dtype) * 0.5
    return h0


def _check_call(m, got, x, hx, tol, what):
    with torch.no_grad():
        want_y, want_h = m(x, hx)
    y, h = got(x, hx)
    _check(y, want_y, tol, f"{what}: output")
    if isinstance(want_h, tuple):
        assert isinstance(h, tuple) and len(h) == 2
        _check(h[0], want_h[0], tol, f"{what}: h_n")
        _check(h[1], want_h[1], tol, f"{what}: c_n")
    else:
        _check(h, want_h, tol, f"{what}: h_n")


GRID = [(kind, L, bias, bf, bi) for kind in ("LSTM", "GRU") for L in (1, 3)
        for bias in (True, False) for bf in (False, True) for bi in (False, True)]


@pytest.mark.parametrize("kind,L,bias,batch_first,bidirectional", GRID,
                         ids=[f"{k}-L{L}-{'b' if b else 'nob'}-{'bf' if bf else 'tf'}-"
                              f"{'bi' if bi else 'uni'}" for k, L, b, bf, bi in GRID])
def test_module_matches_torch(kind, L, bias, batch_first, bidirectional):
    D, H, B, T = 5, 6, 4, 9
    m = _init(getattr(nn, kind)(D, H, num_layers=L, bias=bias, batch_first=batch_first,
                                bidirectional=bidirectional), 1)
    got = crnn.from_torch(m)
    assert isinstance(got, TorchLSTM if kind == "LSTM" else TorchGRU)
    assert got.handle.num_layers == L and got.handle.cells == [kind.lower()] * L
    torch.manual_seed(2)
    x = torch.randn(B, T, D) if batch_first else torch.randn(T, B, D)
    for hx in (None, _states(m, B, 3)):
        _check_call(m, got, x, hx, TOL32, f"hx={'given' if hx is not None else None}")


@pytest.mark.parametrize("L,bidirectional,batch_first", [(1, False, False), (2, True, False),
                                                         (3, True, True)])
def test_lstm_with_projection(L, bidirectional, batch_first):
    D, H, P, B, T = 4, 7, 3, 3, 8
    m = _init(nn.LSTM(D, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first,
                      proj_size=P), 4)
    got = crnn.from_torch(m)
    assert got.proj_size == P
    torch.manual_seed(5)
    x = torch.randn(B, T, D) if batch_first else torch.randn(T, B, D)
    for hx in (None, _states(m, B, 6)):
        _check_call(m, got, x, hx, TOL32, "proj_size")
    # The same from its state_dict alone: proj_size read off weight_hr's shape.
    sd = crnn.from_torch(m.state_dict(), batch_first=batch_first)
    assert (sd.proj_size, sd.hidden_size, sd.num_layers) == (P, H, L)
    _check_call(m, sd, x, _states(m, B, 6), TOL32, "proj_size from state_dict")


def test_projection_of_a_rank_deficient_weight_hr():
    """W_hr of rank < P: an h_0 outside its range cannot be lifted, and is refused; zeros and
    h_0 inside the range still run exactly."""
    m = _init(nn.LSTM(3, 5, proj_size=2), 7)
    with torch.no_grad():
        m.weight_hr_l0[1] = 2 * m.weight_hr_l0[0]            # rank 1
    got = crnn.from_torch(m)
    x = torch.randn(6, 2, 3)
    _check_call(m, got, x, None, TOL32, "zero h_0")
    inside = torch.tensor([[[0.3, 0.6], [-0.2, -0.4]]])     # multiples of (1, 2)
    _check_call(m, got, x, (inside, torch.zeros(1, 2, 5)), TOL32, "h_0 in the range")
    with pytest.raises(ValueError, match=r"h_0\[0\] cannot be represented with proj_size=2: "
                                         r"weight_hr_l0 is \(nearly\) rank-deficient"):
        got(x, (torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), torch.zeros(1, 2, 5)))


@pytest.mark.parametrize("kind,proj", [("LSTM", 0), ("GRU", 0), ("LSTM", 2)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_sequences_and_lengths(kind, proj, batch_first):
    D, H, L = 3, 5, 2
    kw = {"proj_size": proj} if proj else {}
    m = _init(getattr(nn, kind)(D, H, num_layers=L, batch_first=batch_first, bidirectional=True,
                                **kw), 8)
    got = crnn.from_torch(m)
    torch.manual_seed(9)
    T, lens = 9, torch.tensor([9, 2, 5, 9, 1])
    B = len(lens)
    x = torch.randn(B, T, D) if batch_first else torch.randn(T, B, D)
    hx = _states(m, B, 10)
    packed = pack_padded_sequence(x, lens, batch_first=batch_first, enforce_sorted=False)
    with torch.no_grad():
        want_p, want_h = m(packed, hx)
    got_p, got_h = got(packed, hx)
    assert type(got_p).__name__ == "PackedSequence"
    assert torch.equal(got_p.batch_sizes, want_p.batch_sizes)
    _check(_np(got_p.data), want_p.data, TOL32, "packed output")
    for g, w in zip(got_h if kind == "LSTM" else [got_h], want_h if kind == "LSTM" else [want_h]):
        _check(g, w, TOL32, "final states (packed)")
    want_y, _ = pad_packed_sequence(want_p, batch_first=batch_first, total_length=T)
    y, h = got(x, hx, lengths=lens)
    _check(y, want_y, TOL32, "output (lengths=)")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_unbatched_input(kind):
    m = _init(getattr(nn, kind)(4, 3, num_layers=2, bidirectional=True), 11)
    got = crnn.from_torch(m)
    x = torch.randn(6, 4)
    hx = _states(m, 1, 12)
    hx = tuple(s[:, 0] for s in hx) if kind == "LSTM" else hx[:, 0]
    _check_call(m, got, x, hx, TOL32, "unbatched")
    _check_call(m, got, x, None, TOL32, "unbatched, no hx")


@pytest.mark.parametrize("kind,proj", [("LSTM", 0), ("GRU", 0), ("LSTM", 3)])
def test_float64_module(kind, proj):
    kw = {"proj_size": proj} if proj else {}
    m = _init(getattr(nn, kind)(5, 6, num_layers=2, bidirectional=True, batch_first=True,
                                dtype=torch.float64, **kw), 13)
    got = crnn.from_torch(m)
    assert got.dtype == np.float64
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    _check_call(m, got, x, _states(m, 3, 14, torch.float64), TOL64, "float64")


def test_gru_gate_order_and_reset_placement_matter():
    """A GRU whose r and z weights differ: swapping them back, or running the reset before the
    recurrent product (Keras reset_after=False), is far from torch; crnn is not."""
    m = _init(nn.GRU(3, 4), 15, scale=1.0)
    x = torch.randn(7, 2, 3)
    with torch.no_grad():
        want, _ = m(x)
    got = crnn.from_torch(m)
    _check(got(x)[0], want, TOL32, "GRU")
    entry = got.handle  # the reset placement crnn compiled
    assert entry.reset_after == [True]
    sd = {k: _np(v) for k, v in m.state_dict().items()}
    swapped = {k: np.concatenate([v[4:8], v[0:4], v[8:]]) for k, v in sd.items()}
    assert np.abs(crnn.from_torch(swapped)(x)[0] - _np(want)).max() > 1e-2


# ----------------------------------------------------------------------------- cells
@pytest.mark.parametrize("kind,kw", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}),
                                     ("LSTMCell", {}), ("GRUCell", {}),
                                     ("GRUCell", {"bias": False}), ("LSTMCell", {"bias": False})])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cells_in_a_decoding_loop(kind, kw, dtype):
    D, H, B, steps = 4, 5, 3, 6
    m = getattr(nn, kind)(D, H, dtype=dtype, **kw)
    _init(m, 16)
    got = crnn.from_torch(m)
    assert type(got).__name__ == "Torch" + kind
    tol = TOL64 if dtype == torch.float64 else TOL32
    torch.manual_seed(17)
    xs = torch.randn(steps, B, D, dtype=dtype)
    lstm = kind == "LSTMCell"
    hx_t = hx_c = None
    for t in range(steps):                      # feed each step's state back, as a decoder does
        with torch.no_grad():
            hx_t = m(xs[t], hx_t)
        hx_c = got(xs[t], hx_c)
        for g, w in zip(hx_c if lstm else [hx_c], hx_t if lstm else [hx_t]):
            _check(g, w, tol, f"{kind} step {t}")
    # Unbatched: (D,) and (H,) in, (H,) out.
    h0 = (torch.randn(H, dtype=dtype), torch.randn(H, dtype=dtype)) if lstm else \
        torch.randn(H, dtype=dtype)
    with torch.no_grad():
        want = m(xs[0, 0], h0)
    res = got(xs[0, 0], h0)
    for g, w in zip(res if lstm else [res], want if lstm else [want]):
        _check(g, w, tol, f"{kind} unbatched")


def test_cells_from_state_dicts_and_pickle():
    for kind, cls in (("RNNCell", TorchRNNCell), ("LSTMCell", TorchLSTMCell),
                      ("GRUCell", TorchGRUCell)):
        m = _init(getattr(nn, kind)(3, 4), 18)
        got = crnn.from_torch({k: _np(v) for k, v in m.state_dict().items()})
        assert isinstance(got, cls) and (got.input_size, got.hidden_size) == (3, 4)
        x = torch.randn(2, 3)
        with torch.no_grad():
            want = m(x)
        res = got(x)
        lstm = kind == "LSTMCell"
        for g, w in zip(res if lstm else [res], want if lstm else [want]):
            _check(g, w, TOL32, f"{kind} from state_dict")
        clone = pickle.loads(pickle.dumps(got))
        r2 = clone(x)
        assert all(np.array_equal(a, b) for a, b in zip(r2 if lstm else [r2],
                                                      res if lstm else [res]))
        assert repr(got) == f"Torch{kind}(3, 4, dtype=float32)"


# ----------------------------------------------------------------------------- state_dicts
def test_state_dicts_round_trip_and_inference():
    m = _init(nn.LSTM(3, 4, num_layers=2, bias=False, batch_first=True, bidirectional=True), 19)
    sd = m.state_dict()
    got = crnn.from_torch({k: _np(v) for k, v in sd.items()}, batch_first=True)
    assert isinstance(got, TorchLSTM)
    assert (got.input_size, got.hidden_size, got.num_layers, got.bias, got.bidirectional) == \
        (3, 4, 2, False, True)
    x = torch.randn(2, 5, 3)
    _check_call(m, got, x, None, TOL32, "LSTM from state_dict")
    m2 = nn.LSTM(3, 4, num_layers=2, bias=False, batch_first=True, bidirectional=True)
    m2.load_state_dict({k: torch.from_numpy(v) for k, v in got.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(m2(x)[0], m(x)[0])
    gru = _init(nn.GRU(3, 4, num_layers=3), 20)
    big = {"emb.weight": torch.zeros(2, 3), **{"enc." + k: v for k, v in gru.state_dict().items()}}
    sub = crnn.from_torch(big, prefix="enc.")
    assert isinstance(sub, TorchGRU) and sub.num_layers == 3
    _check_call(gru, sub, torch.randn(5, 2, 3), None, TOL32, "GRU from a prefixed state_dict")
    assert repr(got) == ("TorchLSTM(3, 4, num_layers=2, bias=False, batch_first=True, "
                         "bidirectional=True, dtype=float32)")
    clone = pickle.loads(pickle.dumps(got))
    assert np.array_equal(clone(x)[0], got(x)[0])


def test_bad_arguments():
    lstm = crnn.from_torch(nn.LSTM(3, 4, num_layers=2))
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"hx: got ndarray, expected a tuple \(h_0, c_0\)"):
        lstm(x, np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c_0\): got shape \(2, 2, 3\), expected "
                                         r"\(2, 2, 4\)"):
        lstm(x, (np.zeros((2, 2, 4)), np.zeros((2, 2, 3))))
    proj = crnn.from_torch(nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\): got shape \(1, 2, 4\), expected "
                                         r"\(1, 2, 2\).*proj_size"):
        proj(x, (np.zeros((1, 2, 4)), np.zeros((1, 2, 4))))
    with pytest.raises(ValueError, match="proj_size: got 2, but only nn.LSTM"):
        crnn.from_torch(nn.GRU(3, 4).state_dict(), proj_size=2)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['nonlinearity'\] "
                                        r"for a torch.nn.GRU"):
        crnn.from_torch(nn.GRU(3, 4).state_dict(), nonlinearity="relu")
    with pytest.raises(ValueError, match=r"does not match nn.LSTM\(.*proj_size=2\).*missing keys "
                                         r"\['weight_hr_l0'\]"):
        sd = nn.LSTM(3, 4, proj_size=2).state_dict()
        del sd["weight_hr_l0"]
        crnn.from_torch(sd, proj_size=2)
    cell = crnn.from_torch(nn.LSTMCell(3, 4))
    with pytest.raises(ValueError, match=r"hx: got Tensor, expected a tuple \(h, c\)"):
        cell(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h\): got shape \(3, 4\), expected \(2, 4\)"):
        cell(torch.zeros(2, 3), (torch.zeros(3, 4), torch.zeros(2, 4)))
    with pytest.raises(ValueError, match=r"input: got shape \(2, 3, 1\)"):
        cell(np.zeros((2, 3, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="hidden_size: got 5, but the module has "
                                             "hidden_size=4"):
            crnn.from_torch(nn.GRUCell(3, 4), hidden_size=5)
