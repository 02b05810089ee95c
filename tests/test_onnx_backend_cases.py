"""crnn.load_onnx on the ONNX project's own backend node cases.

``onnx.backend.test.case.node.collect_testcases()`` (shipped in the ``onnx`` wheel) gives, for
every operator of the spec, small models with inputs and the expected outputs.  Every case whose
operators are all in :data:`crnn.interop.onnx.SUPPORTED_OPS` must either give the expected
outputs (same shape, same dtype, values within the tolerances below) or be refused at load time
with :class:`OnnxError` for a reason crnn documents (a data type it has no NumPy kind for, a
non-tensor graph input, Dropout in training mode, an LSTM with peepholes); every other case must
be refused at load time with :class:`OnnxError` naming the operators crnn lacks.  Every case of the
recurrent operators (RNN, LSTM, GRU, the batchwise ``layout=1`` ones included) must run and match,
except ``test_lstm_with_peepholes``: crnn's LSTM cell has no peephole connections.

Tolerances, per output dtype.  ONNX's own runner uses rtol 1e-3 / atol 1e-7 for every dtype;
crnn is held tighter where the dtype allows:

- integers and bool: exact;
- float64: rtol 1e-12, atol 1e-14: the expected values are NumPy's, computed by the same
  operations in float64 (a few ulps, eps = 2.2e-16, across a chain of ops);
- float32: rtol 1e-5, atol 1e-6: the expected values come from NumPy in float32 or from float64
  rounded to float32, and crnn runs the same chain of ops in float32, possibly summing in another
  order; a reduction of n <= a few hundred O(1) terms differs by about eps * log2(n) * sum|x|
  ~ 1.2e-7 * 8 * O(1), i.e. ~1e-6 absolute, and a chain of ~10 expanded ops (layer
  normalisation, selu) accumulates at most ~80 ulps (rtol 1e-5 = 84 ulps of float32).  Measured:
  at most 7.2e-7 absolute (layer normalisation, values ~2.4);
- float16: ONNX's rtol 1e-3 (one float16 ulp, eps = 9.8e-4) and atol 1e-7; measured: exact.

NaN must appear where the expected output has NaN.
"""
import re
import warnings

import numpy as np
import pytest

import crnn
from crnn.interop.onnx import SUPPORTED_OPS, OnnxError

onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install '.[onnx]'")
from onnx import numpy_helper  # noqa: E402

TOLERANCES = {np.dtype(np.float64): (1e-12, 1e-14), np.dtype(np.float32): (1e-5, 1e-6),
              np.dtype(np.float16): (1e-3, 1e-7)}

#: Why a case whose operators crnn supports may still be refused at load: the reasons crnn
#: documents.  Each message names the tensor and the data type, or the node and the input.
DOCUMENTED_REFUSALS = (
    r"(input|output) '[^']+': got data type [A-Z0-9]+, which crnn cannot run",
    r"input '[^']+': got a (sequence_type|optional_type|map_type) type, expected a tensor",
    r"Dropout node .*: got input training_mode '[^']+', which is not a constant False",
    r"LSTM node .*: got input P \(peepholes\) '[^']+', a graph input; crnn's LSTM cell has no "
    r"peephole connections",
)

#: Cases of the recurrent operators crnn refuses (see DOCUMENTED_REFUSALS): all others must pass.
RECURRENT_REFUSED = {"test_lstm_with_peepholes"}

#: Fewest cases with supported operators that must run and match (795 with onnx 1.23): a floor
#: so that a regression refusing whole families of cases cannot pass silently.
MIN_PASSING = 700


@pytest.fixture(scope="module")
def cases():
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the case generators' own NumPy warnings
        return collect_testcases()


def _array(v):
    return numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)


def _ops(case):
    return {n.op_type for n in case.model.graph.node}


def _check_outputs(case, model):
    names = [a.name for a in model.get_inputs()]
    for k, (inputs, expected) in enumerate(case.data_sets):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)   # inf/NaN cases
            got = model.run(None, dict(zip(names, [_array(v) for v in inputs])))
        assert len(got) == len(expected), f"data set {k}: {len(got)} outputs"
        for i, (g, w) in enumerate(zip(got, expected)):
            w = _array(w)
            what = f"data set {k}, output {i}"
            assert g.shape == w.shape, f"{what}: shape {g.shape}, expected {w.shape}"
            assert g.dtype == w.dtype, f"{what}: dtype {g.dtype}, expected {w.dtype}"
            if g.dtype in TOLERANCES:
                rtol, atol = TOLERANCES[g.dtype]
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)
            else:
                np.testing.assert_array_equal(g, w, err_msg=what)


def test_cases_with_supported_operators_match_or_are_refused_at_load(cases):
    supported = [c for c in cases if _ops(c) <= set(SUPPORTED_OPS)]
    failures, passed = [], []
    for case in supported:
        try:
            model = crnn.load_onnx(case.model)
        except OnnxError as err:
            if not any(re.search(p, str(err)) for p in DOCUMENTED_REFUSALS):
                failures.append(f"{case.name}: refused at load for an undocumented reason: {err}")
            continue
        try:
            _check_outputs(case, model)
            passed.append(case.name)
        except Exception as err:  # noqa: BLE001 - every failing case is listed, not just the first
            failures.append(f"{case.name}: {type(err).__name__}: {str(err)[:300]}")
    assert not failures, f"{len(failures)} of {len(supported)} cases fail:\n" + "\n".join(failures)
    assert len(passed) >= MIN_PASSING, f"only {len(passed)} of {len(supported)} cases matched"
    recurrent = {c.name for c in cases if _ops(c) & {"RNN", "LSTM", "GRU"}}
    assert len(recurrent) >= 17 and any("batchwise" in n for n in recurrent)
    assert recurrent - set(passed) == RECURRENT_REFUSED


def test_cases_with_other_operators_are_refused_at_load_naming_them(cases):
    others = [c for c in cases if not _ops(c) <= set(SUPPORTED_OPS)]
    assert others and not any(_ops(c) & {"RNN", "LSTM", "GRU"} for c in others)
    failures = []
    for case in others:
        missing = sorted(_ops(case) - set(SUPPORTED_OPS))
        try:
            crnn.load_onnx(case.model)
        except OnnxError as err:
            unnamed = [op for op in missing if not re.search(rf"\b{op} \(", str(err))]
            if unnamed:
                failures.append(f"{case.name}: message does not name {unnamed}: {err}")
        except Exception as err:  # noqa: BLE001
            failures.append(f"{case.name}: {type(err).__name__} instead of OnnxError: {err}")
        else:
            failures.append(f"{case.name}: loaded, although it uses {missing}")
    assert not failures, f"{len(failures)} of {len(others)} cases:\n" + "\n".join(failures)
