"""crnn.dask: models on Dask arrays and data frames, on a real two-process ``LocalCluster``.

The oracle is local ``model.predict`` at the same crnn thread count: a row's result depends on
the rows computed in the same C call (OpenBLAS sums the last ``M mod 4`` rows of a GEMM in
another order; a batch of one runs on crnn's own kernel), so crnn.dask cuts the batch axis at
multiples of ``batch_size`` and the comparison is bitwise.  Each row is also checked against the
model run on that sequence alone, within the suite's float tolerances.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")
distributed = pytest.importorskip("distributed")

import cloudpickle  # noqa: E402  (a dependency of dask)

import crnn  # noqa: E402
import crnn.dask  # noqa: E402
from crnn import (Bidirectional, Dense, Embedding, Masking, Sequential, SimpleRNN)  # noqa: E402

from _helpers import REPO_ROOT, describe  # noqa: E402

#: Every wait on the cluster is bounded, so a broken cluster fails the test instead of hanging.
TIMEOUT = 60

#: Absolute error allowed between a row of a padded batch and the model on that row alone
#: (the suite's ceilings on hidden states; the heads here are small, |y| = O(1)).
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


@pytest.fixture(scope="module")
def client():
    """Two worker processes (spawned, distributed's default), one thread each, no dashboard."""
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, memory_limit="2GiB",
                                           silence_logs=50)
    c = distributed.Client(cluster, timeout=TIMEOUT)
    try:
        yield c
    finally:
        c.close(timeout=TIMEOUT)
        cluster.close(timeout=TIMEOUT)


@pytest.fixture
def one_thread():
    """Local predict at the workers' default crnn thread count (1); restored afterwards."""
    saved = crnn.get_num_threads()
    crnn.set_num_threads(1)
    yield
    crnn.set_num_threads(saved)


def _compute(client, collection):
    return client.compute(collection).result(timeout=TIMEOUT)


# --------------------------------------------------------------------------- models and data
def _features_model(dtype, units=(24, 12)):
    """SimpleRNN stack + Dense on (batch, timesteps, 6) features, no mask."""
    return Sequential([SimpleRNN(units[0], return_sequences=True, input_shape=(None, 6),
                                 dtype=dtype, seed=1),
                       SimpleRNN(units[1], dtype=dtype, seed=2),
                       Dense(3, dtype=dtype, seed=3)])


def _masking_model(dtype):
    """Masking + Bidirectional tagger: per-step outputs, masked."""
    return Sequential([Masking(0.0, input_shape=(None, 6), dtype=dtype),
                       Bidirectional(SimpleRNN(8, return_sequences=True, dtype=dtype, seed=1)),
                       Dense(4, dtype=dtype, seed=3)])


def _embedding_model(dtype, return_sequences=False):
    """Embedding(mask_zero) classifier, or tagger with ``return_sequences``."""
    layers = [Embedding(40, 8, mask_zero=True, dtype=dtype, seed=1),
              SimpleRNN(10, return_sequences=return_sequences, dtype=dtype, seed=2),
              Dense(5 if return_sequences else 1,
                    activation="softmax" if return_sequences else "sigmoid", dtype=dtype, seed=3)]
    return Sequential(layers)


def _features(rng, n, steps=9, masked=False):
    x = rng.standard_normal((n, steps, 6))
    if masked:  # right and left padding, and one empty row
        for i in range(0, n, 3):
            x[i, steps - 1 - i % steps:] = 0.0
        x[1, :4] = 0.0
        x[2] = 0.0
    return x


def _ids(rng, n, steps=9):
    ids = rng.integers(1, 40, (n, steps))
    for i in range(0, n, 4):
        ids[i, steps - 1 - i % steps:] = 0
    return ids


# --------------------------------------------------------------------------- import hygiene
def test_import_crnn_does_not_import_dask():
    code = ("import sys, numpy as np, crnn\n"
            "m = crnn.Sequential([crnn.SimpleRNN(3, input_shape=(2, 4))])\n"
            "m.predict(np.zeros((5, 2, 4), 'float32'), verbose=0)\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('dask', 'distributed'))\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, describe(proc)


# --------------------------------------------------------------------------- arrays
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["features", "masking", "embedding_tagger"])
def test_array_predict_is_bitwise_local_predict(client, one_thread, rng, kind, dtype):
    if kind == "features":
        model, x = _features_model(dtype), _features(rng, 203)
    elif kind == "masking":
        model, x = _masking_model(dtype), _features(rng, 203, masked=True)
    else:
        model, x = _embedding_model(dtype, return_sequences=True), _ids(rng, 203)
    want = model.predict(x, verbose=0)
    xd = da.from_array(x, chunks=(64,) + x.shape[1:])
    y = model.predict(xd) if kind == "features" else crnn.dask.predict(model, xd)
    assert isinstance(y, da.Array)
    assert (y.shape, y.dtype) == (want.shape, want.dtype)
    assert y.chunks[0] == (64, 64, 64, 11)
    got = _compute(client, y)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    # and each row is the model on that sequence alone, within tolerance
    alone = np.concatenate([model.predict(x[i:i + 1], verbose=0) for i in range(0, 203, 29)])
    assert np.max(np.abs(got[::29] - alone)) <= TOL[np.dtype(dtype)]


def test_array_chunks_are_cut_at_multiples_of_batch_size(client, one_thread, rng):
    model = _features_model("float32")
    x = _features(rng, 203).astype(np.float32)
    y = crnn.dask.predict(model, da.from_array(x, chunks=(49, 9, 6)), batch_size=16)
    assert y.chunks[0] == (48, 48, 48, 48, 11)
    assert np.array_equal(_compute(client, y), model.predict(x, batch_size=16, verbose=0))
    # what the cut prevents: chunks of 49 computed as they are (each ending in a call of one
    # row) differ from local predict
    chunked = np.concatenate([model.predict(x[s:s + 49], batch_size=16, verbose=0)
                              for s in range(0, 203, 49)])
    assert not np.array_equal(chunked, model.predict(x, batch_size=16, verbose=0))


def test_array_other_axes_are_merged_with_a_warning(one_thread, rng):
    model = _features_model("float64")
    x = _features(rng, 40)
    with pytest.warns(UserWarning, match=r"x: axes \[1, 2\] are split"):
        y = crnn.dask.predict(model, da.from_array(x, chunks=(32, 4, 3)))
    assert y.chunks == ((32, 8), (3,))
    assert np.array_equal(y.compute(scheduler="threads"), model.predict(x, verbose=0))


class ThreadProbe(Sequential):
    """A model whose predictions are the crnn thread count the worker ran them at."""

    def predict(self, x, batch_size=None, verbose="auto"):
        out = super().predict(x, batch_size=batch_size, verbose=verbose)
        return np.full_like(out, crnn.get_num_threads())


def test_array_num_threads_is_applied_on_the_workers(client, rng):
    model = ThreadProbe([SimpleRNN(8, input_shape=(None, 6), seed=1), Dense(3, seed=3)])
    x = da.from_array(_features(rng, 48, steps=5).astype(np.float32), chunks=(8, 5, 6))
    before = client.run(crnn.get_num_threads)
    for threads, want in ((2, 2), (None, 1)):  # default: one crnn thread per Dask thread
        y = _compute(client, crnn.dask.predict(model, x, batch_size=4, num_threads=threads))
        assert np.all(y == want), (threads, np.unique(y))
    assert client.run(crnn.get_num_threads) == before  # restored after the tasks


def test_local_scheduler_restores_the_thread_setting(rng):
    model = _features_model("float32")
    x = _features(rng, 100)
    saved = crnn.get_num_threads()
    try:
        crnn.set_num_threads(2)
        y = crnn.dask.predict(model, da.from_array(x, chunks=(32, 9, 6)))
        got = y.compute(scheduler="threads")
        assert crnn.get_num_threads() == 2
        crnn.set_num_threads(1)
        assert np.array_equal(got, model.predict(x, verbose=0))
    finally:
        crnn.set_num_threads(saved)


def test_thread_setting_waits_for_tasks_wanting_another_value():
    saved = crnn.get_num_threads()
    seen = []
    inside = threading.Event()
    release = threading.Event()

    def first():
        with crnn.dask._threads(1):
            seen.append(("first", crnn.get_num_threads()))
            inside.set()
            assert release.wait(TIMEOUT)
            seen.append(("first end", crnn.get_num_threads()))

    def second():
        assert inside.wait(TIMEOUT)
        with crnn.dask._threads(2):
            seen.append(("second", crnn.get_num_threads()))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert inside.wait(TIMEOUT)
    time.sleep(0.2)  # second() is blocked meanwhile: it must not change the setting
    release.set()
    for t in threads:
        t.join(TIMEOUT)
    assert seen == [("first", 1), ("first end", 1), ("second", 2)]
    assert crnn.get_num_threads() == saved


# --------------------------------------------------------------------------- shipping the model
class CountingSequential(Sequential):
    """Counts pickles and unpickles of models of this class, per process."""

    pickled = 0
    unpickled = 0

    def __getstate__(self):
        type(self).pickled += 1
        return super().__getstate__()

    def __setstate__(self, state):
        type(self).unpickled += 1
        super().__setstate__(state)


def _counts():
    return CountingSequential.pickled, CountingSequential.unpickled


def _task_bytes(collection):
    """Bytes of every task pickled on its own, as distributed sends them to workers."""
    return [len(cloudpickle.dumps(task)) for task in dict(collection.__dask_graph__()).values()]


def test_model_reaches_each_worker_once(client, one_thread, rng):
    model = CountingSequential([SimpleRNN(512, input_shape=(None, 6), seed=1), Dense(2, seed=2)])
    model_bytes = sum(w.nbytes for w in model.get_weights())
    assert model_bytes > 1 << 20
    x = _features(rng, 1024, steps=3).astype(np.float32)
    want = model.predict(x, verbose=0)
    before_client, before_workers = _counts(), client.run(_counts)
    for _ in range(2):  # a second job with the same model finds it built on the workers
        y = crnn.dask.predict(model, da.from_array(x, chunks=(32, 3, 6)))  # 32 chunks
        assert np.array_equal(_compute(client, y), want)
    pickled, unpickled = np.subtract(_counts(), before_client)
    assert (pickled, unpickled) == (2, 0)  # once per job, on the client; never unpickled here
    for addr, counts in client.run(_counts).items():
        p, u = np.subtract(counts, before_workers.get(addr, (0, 0)))
        assert p == 0 and u <= 1, (addr, p, u)  # never pickled again; built at most once


@pytest.mark.parametrize("kind", ["array", "partitions"])
def test_graph_holds_the_model_once(kind):
    model = Sequential([Embedding(20000, 16, mask_zero=True, seed=1), SimpleRNN(8, seed=2)])
    model_bytes = sum(w.nbytes for w in model.get_weights())
    assert model_bytes > 1 << 20

    def sizes(n_chunks):
        if kind == "array":
            x = da.zeros((64 * n_chunks, 5), chunks=(64, 5), dtype=np.int64)
            return _task_bytes(crnn.dask.predict(model, x))
        _, ddf = _frame([np.arange(1, 4)] * (4 * n_chunks), npartitions=n_chunks)
        return _task_bytes(crnn.dask.predict_partitions(model, ddf, "seq"))

    few, many = sizes(4), sizes(64)
    assert sum(1 for b in many if b > model_bytes) == 1  # the model's own key
    assert max(b for b in many if b < model_bytes) < 4096  # every other task is small
    # the graph grows with the chunks, not with chunks x model size
    assert sum(many) - sum(few) < 60 * 2 * 4096
    assert sum(many) < model_bytes + 64 * 2 * 4096


def test_sizeof_counts_the_weights():
    sizeof = pytest.importorskip("dask.sizeof").sizeof
    model = _embedding_model("float64")
    weights = sum(w.nbytes for w in model.get_weights())
    assert weights <= sizeof(model) < weights + 64 * 1024
    assert sys.getsizeof(model) >= weights
    shipped = crnn.dask._ShippedModel.of(model)
    assert sizeof(shipped) >= len(shipped.payload) >= weights
    shipped.model  # noqa: B018 - unpickled: counted too
    assert sizeof(shipped) >= len(shipped.payload) + weights


def test_shipped_model_is_shared_per_process_and_a_snapshot(one_thread, rng):
    model = _features_model("float32")
    shipped = crnn.dask._ShippedModel.of(model)
    again = pickle.loads(pickle.dumps(shipped))
    assert again is shipped  # same process, same token: the same object, one model
    x = _features(rng, 8)
    want = model.predict(x, verbose=0)
    y = crnn.dask.predict(model, da.from_array(x, chunks=(8, 9, 6)))
    model.set_weights([w * 0 for w in model.get_weights()])  # after building the graph
    assert np.array_equal(y.compute(scheduler="threads"), want)


# --------------------------------------------------------------------------- faults
def _gate(block, prefix, block_info=None):
    """Chunks from 2 on: say so, then wait until the test lets them go."""
    k = block_info[0]["chunk-location"][0]
    if k >= 2:
        distributed.Event(f"{prefix}-inside-{k}").set()
        if not distributed.Event(f"{prefix}-go").wait(timeout=TIMEOUT):
            raise TimeoutError("the test never released the gate")
    return block


def test_worker_killed_mid_job(client, one_thread, rng):
    model = _features_model("float32")
    x = _features(rng, 256).astype(np.float32)
    want = model.predict(x, verbose=0)
    prefix = f"crnn-kill-{uuid.uuid4().hex}"
    y = crnn.dask.predict(model, da.from_array(x, chunks=(32, 9, 6)))
    future = client.compute(y.map_blocks(_gate, prefix, dtype=y.dtype))
    # wait until both workers (one thread each) sit inside a gated chunk, predicted
    deadline = time.monotonic() + TIMEOUT
    while sum(distributed.Event(f"{prefix}-inside-{k}").is_set() for k in range(2, 8)) < 2:
        assert time.monotonic() < deadline, "the gated chunks never started"
        time.sleep(0.05)
    victim = sorted(client.scheduler_info()["workers"])[0]
    held = client.run_on_scheduler(
        lambda dask_scheduler, addr=victim: len(dask_scheduler.workers[addr].has_what))
    assert held >= 1  # the model's key (a dependency of its tasks), lost with the worker
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    while victim in client.scheduler_info()["workers"]:
        assert time.monotonic() < deadline, "the scheduler never noticed the dead worker"
        time.sleep(0.05)
    distributed.Event(f"{prefix}-go").set()
    got = future.result(timeout=TIMEOUT)
    assert np.array_equal(got, want)
    client.wait_for_workers(2, timeout=TIMEOUT)  # the nanny restarts it, for the next tests


def test_bad_chunk_error_names_the_chunk(client, one_thread, rng):
    model = _embedding_model("float32")
    ids = _ids(rng, 128)
    ids[70, 3] = 99  # outside the vocabulary of 40
    y = crnn.dask.predict(model, da.from_array(ids, chunks=(32, 9)))
    with pytest.raises(crnn.layers.InvalidIndexError,
                       match=r"x: chunk 2 \(rows 64:96\): x: got index .*99.* position \(6, 3\)"):
        _compute(client, y)


def test_nan_features_propagate_as_locally(client, one_thread, rng):
    model = _features_model("float64")
    x = _features(rng, 64)
    x[40, 2, 1] = np.nan
    want = model.predict(x, verbose=0)
    assert np.isnan(want[40]).all() and not np.isnan(np.delete(want, 40, axis=0)).any()
    got = _compute(client, crnn.dask.predict(model, da.from_array(x, chunks=(32, 9, 6))))
    assert np.array_equal(got, want, equal_nan=True)


def test_array_errors_are_raised_before_any_task(rng):
    model = _features_model("float32")
    with pytest.raises(ValueError, match=r"x: got input_dim 5"):
        crnn.dask.predict(model, da.zeros((10, 4, 5), chunks=(5, 4, 5)))
    with pytest.raises(ValueError, match=r"x: got shape \(10, 4\) float64, which the model "
                                         r"cannot take: x: got shape \(1, 4\), expected "
                                         r"\(batch, timesteps"):
        crnn.dask.predict(model, da.zeros((10, 4), chunks=(5, 4)))
    with pytest.raises(TypeError, match=r"x: got ndarray, expected a dask.array.Array"):
        crnn.dask.predict(model, np.zeros((10, 4, 6)))
    with pytest.raises(TypeError, match=r"x: got .*DataFrame.*predict_partitions"):
        model.predict(dd.from_pandas(pd.DataFrame({"a": [1, 2]}), npartitions=1))
    with pytest.raises(ValueError, match=r"x: got unknown chunk sizes"):
        x = da.zeros((10, 4, 6), chunks=(5, 4, 6))
        crnn.dask.predict(model, x[x[:, 0, 0] == 0])
    with pytest.raises(ValueError, match=r"batch_size: got 0"):
        crnn.dask.predict(model, da.zeros((10, 4, 6), chunks=(5, 4, 6)), batch_size=0)
    with pytest.raises(TypeError, match=r"num_threads: got 1.5"):
        crnn.dask.predict(model, da.zeros((10, 4, 6), chunks=(5, 4, 6)), num_threads=1.5)
    with pytest.raises(TypeError, match=r"model: got str"):
        crnn.dask.predict("model.crnn", da.zeros((10, 4, 6), chunks=(5, 4, 6)))


def test_stateful_models_are_refused():
    model = Sequential([SimpleRNN(4, stateful=True, batch_input_shape=(2, None, 3)), Dense(1)])
    x = da.zeros((4, 5, 3), chunks=(2, 5, 3))
    for call in (lambda: model.predict(x), lambda: crnn.dask.predict(model, x),
                 lambda: crnn.dask.predict_partitions(model, dd.from_pandas(
                     pd.Series([np.zeros((5, 3))] * 4), npartitions=2))):
        with pytest.raises(ValueError, match=r"model: layer 'simple_rnn.*' is stateful"):
            call()


# --------------------------------------------------------------------------- data frames
def _frame(rows, npartitions):
    pdf = pd.DataFrame({"seq": rows, "n": np.arange(len(rows))},
                       index=pd.Index(np.arange(len(rows)) * 10 + 7, name="id"))
    with dask.config.set({"dataframe.convert-string": False}):
        return pdf, dd.from_pandas(pdf, npartitions=npartitions)


def _local_partition(model, seqs, batch_size, explicit_mask, pad_value=0.0):
    """The test's own padding of one partition, then local predict (the oracle)."""
    rows = [np.asarray(s) for s in seqs]
    lengths = np.array([len(r) for r in rows])
    steps = lengths.max()
    x = np.full((len(rows), steps) + rows[0].shape[1:], pad_value, np.result_type(*rows))
    for i, r in enumerate(rows):
        x[i, :len(r)] = r
    if not explicit_mask:
        return model.predict(x, batch_size=batch_size, verbose=0), lengths
    m = np.arange(steps) < lengths[:, None]
    return np.concatenate([model(x[s:s + batch_size], mask=m[s:s + batch_size])
                           for s in range(0, len(x), batch_size)]), lengths


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["embedding", "embedding_tagger", "masking", "features"])
def test_partitions_are_bitwise_local_predict(client, one_thread, rng, kind, dtype):
    n = 90
    lengths = rng.integers(1, 12, n)
    if kind.startswith("embedding"):
        model = _embedding_model(dtype, return_sequences=kind == "embedding_tagger")
        rows = [rng.integers(1, 40, k) for k in lengths]
        rows[5] = list(rows[5])  # a plain list too
    else:
        model = _masking_model(dtype) if kind == "masking" else _features_model(dtype)
        rows = [rng.standard_normal((k, 6)) for k in lengths]
        rows[5] = rows[5].tolist()  # as a Parquet list<list<double>> column reads back
    pdf, ddf = _frame(rows, npartitions=3)
    out = crnn.dask.predict_partitions(model, ddf, "seq", batch_size=16)
    got = _compute(client, out)
    assert list(got.columns) == ["seq", "n", "prediction"]
    assert got.index.equals(pdf.index) and got["n"].equals(pdf["n"])
    assert out.divisions == ddf.divisions
    per_step = kind in ("embedding_tagger", "masking")
    for i in range(ddf.npartitions):
        part = ddf.partitions[i].compute()
        want, lens = _local_partition(model, part["seq"], 16, explicit_mask=kind == "features")
        for label, w, k in zip(part.index, want, lens):
            cell = got.loc[label, "prediction"]
            if per_step:
                assert cell.dtype == object and len(cell) == k
                cell = np.stack(list(cell))
                w = w[:k]
            assert cell.dtype == np.dtype(dtype) and np.array_equal(cell, w), (label, kind)
    # each row is the model on that sequence alone, within tolerance
    for label in pdf.index[::11]:
        seq = np.asarray(pdf.loc[label, "seq"])[None]
        alone = model.predict(seq, verbose=0)[0]
        cell = got.loc[label, "prediction"]
        cell = np.stack(list(cell)) if per_step else cell
        assert np.max(np.abs(cell - alone)) <= TOL[np.dtype(dtype)]


def test_partitions_of_a_series_and_from_parquet(client, one_thread, rng, tmp_path):
    model = _embedding_model("float32")
    rows = [rng.integers(1, 40, k) for k in rng.integers(1, 10, 50)]
    pd.DataFrame({"tokens": rows}).to_parquet(tmp_path / "part.0.parquet")
    pd.DataFrame({"tokens": rows[::-1]}).to_parquet(tmp_path / "part.1.parquet")
    ddf = dd.read_parquet(str(tmp_path))
    assert ddf.npartitions == 2
    preds = crnn.dask.predict_partitions(model, ddf["tokens"], name="p")
    got = _compute(client, preds)
    assert isinstance(got, pd.Series) and got.name == "p" and len(got) == 100
    want = np.concatenate([_local_partition(model, rows, 32, False)[0],
                           _local_partition(model, rows[::-1], 32, False)[0]])
    assert np.array_equal(np.stack(got.to_numpy()), want)
    out = crnn.dask.predict_partitions(model, ddf, "tokens")
    out.to_parquet(tmp_path / "out", schema=None)  # object columns: schema from the data
    back = pd.read_parquet(tmp_path / "out")
    assert np.array_equal(np.stack(back["prediction"].to_numpy()), np.stack(got.to_numpy()))


def test_empty_partitions_and_rows(one_thread, rng):
    model = _embedding_model("float64", return_sequences=True)
    rows = [rng.integers(1, 40, k) for k in rng.integers(1, 8, 90)]
    rows[50] = []  # no step at all: the model's output for a fully masked row, no steps kept
    pdf, ddf = _frame(rows, npartitions=3)
    out = crnn.dask.predict_partitions(model, ddf[ddf["n"] >= 40], "seq")  # partition 0 empty
    got = out.compute(scheduler="sync")
    assert list(got.index) == list(pdf.index[40:])
    assert len(got.loc[pdf.index[50], "prediction"]) == 0
    want, _ = _local_partition(model, rows[60:], 32, False)
    assert all(np.array_equal(np.stack(list(got.loc[label, "prediction"])), w[:len(r)])
               for label, w, r in zip(pdf.index[60:], want, rows[60:]))


@pytest.mark.parametrize("kind", ["features", "masking", "embedding"])
def test_a_partition_of_empty_rows_only(one_thread, rng, kind):
    """Empty sequences give the same result in a partition of their own as beside a longer one
    (a partition of only empty rows used to reach the model as a 0-step batch and fail)."""
    if kind == "embedding":
        model = _embedding_model("float32", return_sequences=True)
        rows = [rng.integers(1, 40, 5), [], []]
    else:
        model = (_features_model if kind == "features" else _masking_model)("float32")
        rows = [rng.standard_normal((5, 6)), np.zeros((0, 6)), np.zeros((0, 6))]
    _, ddf = _frame(rows, npartitions=1)
    together = crnn.dask.predict_partitions(model, ddf, "seq").compute(scheduler="sync")
    alone = crnn.dask.predict_partitions(model, ddf.loc[ddf["n"] > 0], "seq")
    assert alone.npartitions == 1
    alone = alone.compute(scheduler="sync")
    assert list(alone.index) == list(together.index[1:])
    for label in alone.index:
        np.testing.assert_array_equal(np.asarray(list(alone.loc[label, "prediction"])),
                                      np.asarray(list(together.loc[label, "prediction"])))


def test_partition_errors_name_the_partition_and_row(client, rng):
    model = _features_model("float32")
    rows = [rng.standard_normal((4, 6)) for _ in range(30)]
    rows[25] = rng.standard_normal((4, 5))
    pdf, ddf = _frame(rows, npartitions=3)
    with pytest.raises(ValueError, match=r"seq: partition 2: row 257: got shape \(4, 5\), "
                                         r"expected \(timesteps, 6\)"):
        _compute(client, crnn.dask.predict_partitions(model, ddf, "seq"))
    ids = [rng.integers(1, 40, 5) for _ in range(30)]
    ids[3][2] = 45
    _, ddf = _frame(ids, npartitions=3)
    with pytest.raises(crnn.layers.InvalidIndexError, match=r"seq: partition 0: x: got index"):
        _compute(client, crnn.dask.predict_partitions(_embedding_model("float32"), ddf, "seq"))


def test_partition_arguments_are_checked(rng):
    model = _embedding_model("float32")
    pdf, ddf = _frame([np.arange(1, 4)] * 4, npartitions=2)
    with pytest.raises(ValueError, match=r"column: got 'nope', expected one of \['seq', 'n'\]"):
        crnn.dask.predict_partitions(model, ddf, "nope")
    with pytest.raises(ValueError, match=r"column: got 'seq' for a Series"):
        crnn.dask.predict_partitions(model, ddf["seq"], "seq")
    with pytest.raises(TypeError, match=r"n: got dtype int64, expected a column of sequences"):
        crnn.dask.predict_partitions(model, ddf, "n")
    with pytest.raises(TypeError, match=r"data: got DataFrame, expected a dask"):
        crnn.dask.predict_partitions(model, pdf, "seq")
    strings = dd.from_pandas(pdf, npartitions=2)  # Dask's convert-string turns lists into str
    with pytest.raises(TypeError, match=r"convert-string"):
        crnn.dask.predict_partitions(model, strings, "seq")
    unbuilt = Sequential([SimpleRNN(3), Dense(1)])
    with pytest.raises(ValueError, match=r"model: got a model that is not built"):
        crnn.dask.predict_partitions(unbuilt, ddf, "seq")
    unmasked = Sequential([Embedding(40, 4, seed=1), SimpleRNN(3, seed=2)])
    _, ragged = _frame([np.arange(1, 4), np.arange(1, 6)], npartitions=1)
    with pytest.raises(ValueError, match=r"Embedding with mask_zero=False"):
        crnn.dask.predict_partitions(unmasked, ragged, "seq").compute(scheduler="sync")


# --------------------------------------------------------------------------- command line
def test_cli_on_the_cluster(client, one_thread, rng, tmp_path):
    model = _embedding_model("float64", return_sequences=True)
    model.save(tmp_path / "m.crnn")
    ids = _ids(rng, 300)
    np.save(tmp_path / "x.npy", ids)
    addr = client.scheduler.address
    proc = subprocess.run([sys.executable, "-m", "crnn", "predict", str(tmp_path / "m.crnn"),
                           str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--scheduler", addr,
                           "--batch-size", "16", "--chunk-size", "40"],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, describe(proc)
    assert "wrote" in proc.stdout and "300 sequences" in proc.stdout
    got = np.load(tmp_path / "y.npy")
    assert np.array_equal(got, model.predict(ids, batch_size=16, verbose=0))
    assert sorted(os.listdir(tmp_path)) == ["m.crnn", "x.npy", "y.npy"]


# --------------------------------------------------------------------------- the README's example
def test_readme_example_runs(tmp_path):
    readme = open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8").read()
    section = readme[readme.index("## Scoring a dataset that outgrows one machine"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("\n```", start)]
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, describe(proc)
    assert "spam" in proc.stdout
    scores = dd.read_parquet(str(tmp_path / "scores")).compute()
    assert len(scores) == 20000 and scores.index.name == "doc"
    assert da.from_zarr(str(tmp_path / "ids_scores.zarr")).shape == (20000, 1)
