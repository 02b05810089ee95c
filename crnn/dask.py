"""Run crnn models on Dask: arrays chunked along the batch, and data frames of sequences.

``import crnn`` never imports this module (nor Dask); import it, or call
``model.predict`` on a Dask array, when the data outgrows one machine::

    import crnn, crnn.dask
    import dask.array as da, dask.dataframe
    from distributed import Client

    client = Client("tcp://scheduler:8786")           # or LocalCluster()
    model = crnn.load_model("tagger.crnn")
    x = da.from_zarr("sequences.zarr")                # (batch, timesteps, features)
    y = crnn.dask.predict(model, x)                   # lazy, same as model.predict(x)
    y.to_zarr("scores.zarr")

    ddf = dask.dataframe.read_parquet("corpus/")      # a column of token-id lists
    out = crnn.dask.predict_partitions(model, ddf, column="tokens")
    out.to_parquet("tagged/", schema=None)

How the model travels
---------------------
The model is pickled **once**, when the graph is built, into a small wrapper that is **one key**
of the graph, a dependency of every task.  Each worker receives that key once (from the
scheduler, or from another worker that has it) and keeps it in memory: every task on the worker
gets the same object.  The wrapper holds the pickled bytes and unpickles them into a model the
first time a task needs it, so sending the key on from worker to worker never pickles the model
again, and a worker that receives the key twice (say after the key was lost with another worker)
reuses the model it already built: one model per worker process.  Each worker also keeps the
last model it built after the job ends (one; the next model replaces it), so that a later job
with the same model, or a task moved there late, does not unpickle it again.
``sys.getsizeof`` (hence ``dask.sizeof``) of the wrapper and of crnn models counts their
weights, so Dask's memory accounting sees them at their real size.

Threads
-------
:func:`crnn.set_num_threads` is process-wide.  While a task of :func:`predict` or
:func:`predict_partitions` runs, crnn uses ``num_threads`` threads per call (default **1**), and
its previous setting comes back when the process's last such task ends.  One crnn thread per
Dask thread keeps crnn's threads times Dask's threads equal to Dask's own thread count, which
Dask sets to the cores (``LocalCluster`` and ``dask worker`` default to ``nthreads`` summing to
the machine's cores; Dask's threaded scheduler runs one thread per core).  With one Dask thread
per worker and ``k`` cores per worker (``dask worker --nthreads 1`` on a ``k``-core machine, or
``LocalCluster(n_workers=1, threads_per_worker=1)``), pass ``num_threads=k``.

Workers' memory allocator
-------------------------
Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; setting any glibc malloc
threshold turns off glibc's dynamic mmap threshold, and each buffer of 128 KiB or more that a
crnn call allocates is then mapped and unmapped on every call (a chunk takes ~1.5x as long).
Give the workers ``MALLOC_MMAP_THRESHOLD_=33554432`` as well, e.g.
``dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 33554432})``
before starting a ``LocalCluster``.

Determinism
-----------
A row's last bits depend on the rows computed with it in the same C call: OpenBLAS's GEMM
computes the rows past the last multiple of 4 of its ``M`` with another kernel, summing in another
order (seen with layers of 2, 3 or 5 units), and crnn runs a batch of one row on its own kernel
(measured: up to 1.5e-6 on float32 outputs of size ~1, 3e-15 in float64).  So the batch axis is
cut at multiples of ``batch_size`` (re-chunked where a chunk ends elsewhere) and each chunk runs
``model.predict(chunk, batch_size=batch_size)``: every row meets the same rows in the same call as
in ``model.predict(x, batch_size=batch_size)``, and at the same crnn thread count the result is
bitwise that of the local call.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import sys
import threading
import warnings
import weakref
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

try:
    import cloudpickle
    import dask
    import dask.array as da
except ImportError as _err:  # pragma: no cover - exercised without the extra installed
    raise ImportError("crnn.dask needs Dask: pip install 'crnn[dask]' "
                      f"(dask[array,dataframe] and distributed) ({_err})") from None

import crnn

__all__ = ["predict", "predict_partitions"]

#: ``model.predict``'s default batch size (Keras).
DEFAULT_BATCH_SIZE = 32


# --------------------------------------------------------------------------- #
# The model, shipped as one graph key and built once per process
# --------------------------------------------------------------------------- #
#: The shipped models alive in this process, by token: a key received again reuses its model.
_SHIPPED: "weakref.WeakValueDictionary[str, _ShippedModel]" = weakref.WeakValueDictionary()
_SHIPPED_LOCK = threading.Lock()
#: In a Dask worker, the last model built there, kept after its job: the next job (or a task
#: stolen after the worker released the key) with the same model finds it built.
_LAST: List[Any] = [None]


def _in_worker() -> bool:
    dist = sys.modules.get("distributed")
    if dist is None:
        return False
    try:
        dist.get_worker()
    except ValueError:
        return False
    return True


def _shipped(token: str, payload: bytes) -> "_ShippedModel":
    """Unpickle a :class:`_ShippedModel`: the one this process already has for ``token``, if any."""
    with _SHIPPED_LOCK:
        found = _SHIPPED.get(token)
        if found is None:
            found = _ShippedModel(token, payload)
            _SHIPPED[token] = found
        return found


class _ShippedModel:
    """A model pickled once; unpickles (on a worker) into the process's one copy of that model.

    Pickling the wrapper copies its bytes and never pickles the model again; the model is
    unpickled from them the first time a task asks for :attr:`model`.
    """

    __slots__ = ("token", "payload", "_model", "_lock", "__weakref__")

    def __init__(self, token: str, payload: bytes) -> None:
        self.token = token
        self.payload = payload
        self._model: Any = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, model: Any) -> "_ShippedModel":
        """Pickle ``model`` (a snapshot: later changes to it do not reach the graph)."""
        payload = cloudpickle.dumps(model, protocol=5)
        token = hashlib.blake2b(payload, digest_size=16).hexdigest()
        return _shipped(token, payload)

    @property
    def model(self) -> Any:
        """The unpickled model (built once per process, shared by every task)."""
        model = self._model
        if model is None:
            with self._lock:
                model = self._model
                if model is None:
                    model = self._model = cloudpickle.loads(self.payload)
                    if _in_worker():
                        _LAST[0] = self
        return model

    def __reduce__(self) -> Tuple[Any, Tuple[str, bytes]]:
        return _shipped, (self.token, self.payload)

    def __dask_tokenize__(self) -> str:
        return self.token

    def __sizeof__(self) -> int:
        model = self._model
        return object.__sizeof__(self) + len(self.payload) + (0 if model is None else
                                                              model.__sizeof__())

    def __repr__(self) -> str:
        return f"<crnn.dask shipped model {self.token[:8]}, {len(self.payload)} bytes>"


def _ship(model: Any) -> Any:
    """``model`` as one Delayed graph key."""
    shipped = _ShippedModel.of(model)
    return dask.delayed(shipped, name=f"crnn-model-{shipped.token}", pure=True)


# --------------------------------------------------------------------------- #
# Threads
# --------------------------------------------------------------------------- #
class _Threads:
    """Holds :func:`crnn.set_num_threads` at one value while tasks run in this process.

    The first task saves the process's setting and sets its own; the last one to end restores
    it.  A task wanting another value waits until the running ones end (the setting is
    process-wide, and a call's result depends on it).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._value = 0
        self._saved = 0

    @contextlib.contextmanager
    def __call__(self, n: int) -> Iterator[None]:
        with self._cond:
            while self._active and self._value != n:
                self._cond.wait()
            if not self._active:
                self._saved = crnn.get_num_threads()
                self._value = n
                if self._saved != n:
                    crnn.set_num_threads(n)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    if self._saved != n:
                        crnn.set_num_threads(self._saved)
                    self._cond.notify_all()


_threads = _Threads()


# --------------------------------------------------------------------------- #
# Checks shared by both entry points
# --------------------------------------------------------------------------- #
def _check_model(model: Any) -> None:
    if not callable(model) or not hasattr(model, "layers") or not hasattr(model, "predict"):
        raise TypeError(f"model: got {type(model).__name__}, expected a crnn Sequential model")
    if not model.layers:
        raise ValueError("model: got a model with no layers, expected at least one")
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            raise ValueError(
                f"model: layer {layer.name!r} is stateful, expected a model without stateful "
                "layers (a stateful model carries its state from one batch to the next, and Dask "
                "runs chunks independently, on several workers); run it with model.predict, or "
                "rebuild it with stateful=False and the same weights")


def _positive_int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: got {value!r}, expected an int >= 1 or None")
    if value < 1:
        raise ValueError(f"{name}: got {value}, expected an int >= 1 or None")
    return int(value)


def _check_options(batch_size: Any, num_threads: Any) -> Tuple[int, int]:
    return (_positive_int(batch_size, "batch_size", DEFAULT_BATCH_SIZE),
            _positive_int(num_threads, "num_threads", 1))


def _probe(model: Any, sample: np.ndarray,
           shape: Tuple[int, ...]) -> Tuple[Tuple[int, ...], np.dtype]:
    """Shape (after the batch) and dtype of the model's output for inputs like ``sample``.

    Runs the model on ``sample`` (one row of zeros): this builds a model that is not built yet,
    before it is pickled, so that every worker gets the same weights, and raises the model's own
    error for an input it cannot take (wrong feature count, rank or dtype) before any task runs.
    """
    try:
        out = np.asarray(model(sample))
    except Exception as err:
        raise _with_location(err, f"x: got shape {shape} {sample.dtype}, which the model cannot "
                                  "take") from err
    return tuple(out.shape[1:]), out.dtype


def _with_location(err: Exception, where: str) -> Exception:
    """``err`` with ``where`` in front of its message, same type where possible."""
    msg = f"{where}: {err}"
    try:
        new = type(err)(msg)
    except Exception:  # an exception class whose constructor wants other arguments
        new = RuntimeError(f"{msg} ({type(err).__name__})")
    return new


# --------------------------------------------------------------------------- #
# Arrays
# --------------------------------------------------------------------------- #
def _batch_chunks(chunks: Tuple[int, ...], batch_size: int) -> Tuple[int, ...]:
    """``chunks`` with every boundary moved to the nearest multiple of ``batch_size``."""
    n = sum(chunks)
    cuts = []
    pos = 0
    for c in chunks[:-1]:
        pos += c
        cut = min(int(round(pos / batch_size)) * batch_size, n)
        if cut > (cuts[-1] if cuts else 0) and cut < n:
            cuts.append(cut)
    edges = [0] + cuts + [n]
    return tuple(b - a for a, b in zip(edges, edges[1:])) or (0,)


def _predict_block(block: np.ndarray, shipped: _ShippedModel, batch_size: int, num_threads: int,
                   block_info: Optional[Dict[Any, Any]] = None) -> np.ndarray:
    with _threads(num_threads):
        try:
            return shipped.model.predict(block, batch_size=batch_size, verbose=0)
        except Exception as err:
            info = (block_info or {}).get(0, {})
            where = "x"
            if info:
                (a, b) = info["array-location"][0]
                where = f"x: chunk {info['chunk-location'][0]} (rows {a}:{b})"
            raise _with_location(err, where) from err


def predict(model: Any, x: Any, *, batch_size: Optional[int] = None,
            num_threads: Optional[int] = None) -> Any:
    """``model.predict(x)`` for a Dask array ``x``, lazily, chunk by chunk.

    Parameters
    ----------
    model : crnn.Sequential
        Without stateful layers.  It is pickled here (a snapshot) into one graph key, sent once
        to each worker and built once per worker process (see the module docstring).
    x : dask.array.Array
        ``(batch, timesteps, features)``, or ``(batch, timesteps)`` integer ids for a model that
        starts with an ``Embedding``, chunked along the batch.  Other axes split over several
        chunks are merged first (with a warning); the batch axis is re-cut at multiples of
        ``batch_size`` where its chunks do not end on one (see Determinism in the module
        docstring).
    batch_size : int, optional
        Rows per crnn call inside a chunk (default 32, as ``model.predict``).
    num_threads : int, optional
        crnn threads per call while the tasks run (default 1: one per Dask thread; see Threads
        in the module docstring).

    Returns
    -------
    dask.array.Array
        The model's output, ``(batch, ...)``, chunked as ``x`` along the batch, in the model's
        dtype.  With the same thread count, ``y.compute()`` is bitwise
        ``model.predict(x.compute(), batch_size=batch_size)``.

    Raises
    ------
    TypeError
        ``x`` is not a Dask array (a Dask DataFrame goes to :func:`predict_partitions`), or
        ``model`` is not a crnn model.
    ValueError
        A stateful model, unknown chunk sizes, or an input the model cannot take (raised here,
        from the model, before any task runs).  An error in a chunk (e.g. an invalid token id)
        is raised when computing, by the model, its message prefixed with
        ``"x: chunk <i> (rows <a>:<b>)"``.
    """
    _check_model(model)
    if not isinstance(x, da.Array):
        hint = (" (for a Dask DataFrame or Series of sequences use "
                "crnn.dask.predict_partitions)") if hasattr(type(x), "__dask_graph__") else ""
        raise TypeError(f"x: got {type(x).__name__}, expected a dask.array.Array "
                        f"(batch, timesteps, features){hint}")
    batch_size, num_threads = _check_options(batch_size, num_threads)
    if any(math.isnan(s) for s in x.shape):
        raise ValueError(f"x: got unknown chunk sizes (shape {x.shape}), expected known ones "
                         "(call x.compute_chunk_sizes() first)")
    if x.ndim < 1:
        raise ValueError(f"x: got shape {x.shape}, expected (batch, ...)")
    split = [i for i in range(1, x.ndim) if len(x.chunks[i]) > 1]
    if split:
        warnings.warn(f"x: axes {split} are split into several chunks ({x.chunks[1:]}); "
                      "merging them, since each chunk must hold whole sequences "
                      "(chunk only the batch axis to avoid this)", stacklevel=2)
        x = x.rechunk({i: -1 for i in split})
    rows = _batch_chunks(x.chunks[0], batch_size)
    if rows != x.chunks[0]:
        x = x.rechunk({0: rows})
    tail, dtype = _probe(model, np.zeros((1,) + x.shape[1:], x.dtype), x.shape)
    model_key = _ship(model)
    out_ndim = 1 + len(tail)
    kw: Dict[str, Any] = {}
    if out_ndim < x.ndim:
        kw["drop_axis"] = list(range(out_ndim, x.ndim))
    elif out_ndim > x.ndim:
        kw["new_axis"] = list(range(x.ndim, out_ndim))
    name = "crnn-predict-" + dask.base.tokenize(x, model_key.key, batch_size, num_threads)
    return da.map_blocks(_predict_block, x, model_key, batch_size, num_threads, name=name,
                         chunks=(x.chunks[0],) + tuple((n,) for n in tail), dtype=dtype,
                         meta=np.empty((0,) * out_ndim, dtype), **kw)


# --------------------------------------------------------------------------- #
# Data frames of variable-length sequences
# --------------------------------------------------------------------------- #
class _Padding:
    """How a partition's sequences become one padded batch for ``model``.

    ids: the first layer is an Embedding (rows are 1-D token ids, padded with 0, masked by
    ``mask_zero``).  Otherwise rows are ``(timesteps, features)`` and padded with the first
    layer's ``mask_value`` if it is a Masking layer (it masks them), else with zeros and a
    mask from the lengths passed to the model.
    """

    __slots__ = ("ids", "features", "value", "explicit_mask", "equal_lengths", "first")

    def __init__(self, model: Any) -> None:
        first = model.layers[0]
        self.first = first.name
        self.ids = isinstance(first, crnn.Embedding)
        self.value = float(first.mask_value) if isinstance(first, crnn.Masking) else 0.0
        self.explicit_mask = not self.ids and not isinstance(first, crnn.Masking)
        self.equal_lengths = self.ids and not first.mask_zero
        self.features: Optional[int] = None
        if not self.ids:
            try:
                shape = model.input_shape
            except AttributeError:
                shape = None
            if shape is None or shape[-1] is None:
                raise ValueError("model: got a model that is not built (its input_dim is "
                                 "unknown), expected a built one: call model.build((None, None, "
                                 "features)) or create its first layer with input_shape")
            self.features = int(shape[-1])

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__,) + tuple(getattr(self, k) for k in self.__slots__)

    def batch(self, seqs: Any, where: str) -> Tuple[np.ndarray, np.ndarray]:
        """``(padded, lengths)`` of the sequences in ``seqs`` (a pandas Series)."""
        rows = []
        for label, value in zip(seqs.index, seqs.array):
            rows.append(self._row(value, lambda: f"{where}: row {label!r}"))
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        steps = int(lengths.max()) if len(rows) else 0
        if self.equal_lengths and steps and int(lengths.min()) != steps:
            raise ValueError(f"{where}: got sequences of lengths {int(lengths.min())} to {steps}, "
                             f"expected one length: the model's first layer {self.first!r} is an "
                             "Embedding with mask_zero=False, so padding would change the results "
                             "(create it with mask_zero=True, id 0 being padding)")
        if rows and not self.equal_lengths:
            # a partition of empty sequences only: one masked step, as its rows get beside a
            # longer one (a model takes no 0-step batch)
            steps = max(steps, 1)
        dtype = (functools.reduce(np.promote_types, {r.dtype for r in rows}) if rows
                 else np.dtype(np.int64 if self.ids else np.float32))
        shape = (len(rows), steps) if self.ids else (len(rows), steps, self.features)
        padded = np.full(shape, self.value, dtype)
        for i, r in enumerate(rows):
            padded[i, :len(r)] = r
        return padded, lengths

    def _row(self, value: Any, where: Any) -> np.ndarray:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"{where()}: got a missing value, expected a sequence")
        a = value if isinstance(value, np.ndarray) else np.asarray(value)
        if a.dtype == object and a.ndim == 1 and not self.ids:
            # a list of lists as read from Parquet: an array of per-step arrays
            a = np.stack([np.asarray(s) for s in a]) if len(a) else np.zeros((0, self.features))
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{where()}: got dtype {a.dtype}, expected "
                            + ("integer token ids" if self.ids else "real features"))
        if self.ids:
            if a.ndim != 1:
                raise ValueError(f"{where()}: got shape {a.shape}, expected (timesteps,) token ids")
        elif a.ndim == 1 and a.size == 0:
            a = a.reshape(0, self.features)
        elif a.ndim != 2 or a.shape[1] != self.features:
            raise ValueError(f"{where()}: got shape {a.shape}, expected (timesteps, "
                             f"{self.features})")
        return a


def _predict_padded(model: Any, padded: np.ndarray, lengths: np.ndarray, pad: _Padding,
                    batch_size: int) -> np.ndarray:
    """The model on a padded batch, in ``batch_size`` calls, as ``model.predict`` groups them."""
    if not pad.explicit_mask:
        return model.predict(padded, batch_size=batch_size, verbose=0)
    mask = np.arange(padded.shape[1]) < lengths[:, None]
    outs = [model(padded[s:s + batch_size], mask=mask[s:s + batch_size])
            for s in range(0, len(padded), batch_size)]
    return outs[0] if len(outs) == 1 else np.concatenate(outs)


def _cells(out: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """One object cell per row: ``out[i]``, or for per-step outputs its first ``lengths[i]`` steps
    as an array of per-step arrays (the layout Parquet reads and writes for nested lists)."""
    cells = np.empty(len(out), dtype=object)
    if out.ndim <= 2:
        for i in range(len(out)):
            cells[i] = out[i]
        return cells
    for i, n in enumerate(lengths.tolist()):
        steps = np.empty(n, dtype=object)
        for t in range(n):
            steps[t] = out[i, t]
        cells[i] = steps
    return cells


def _predict_partition(part: Any, shipped: _ShippedModel, column: Optional[str], name: str,
                       pad: _Padding, batch_size: int, num_threads: int,
                       partition_info: Optional[Dict[str, Any]] = None) -> Any:
    import pandas as pd
    seqs = part if column is None else part[column]
    where = (column or "data") + (f": partition {partition_info['number']}"
                                  if partition_info else "")
    padded, lengths = pad.batch(seqs, where)  # its errors name the row
    out = np.empty((0,), object)
    if len(padded):
        with _threads(num_threads):
            try:
                out = _predict_padded(shipped.model, padded, lengths, pad, batch_size)
            except Exception as err:
                raise _with_location(err, where) from err
    preds = pd.Series(_cells(out, lengths), index=seqs.index, name=name, dtype=object)
    if column is None:
        return preds
    result = part.copy(deep=False)
    result[name] = preds
    return result


def predict_partitions(model: Any, data: Any, column: Optional[str] = None, *,
                       name: str = "prediction", batch_size: Optional[int] = None,
                       num_threads: Optional[int] = None) -> Any:
    """Predictions for a Dask DataFrame column (or Series) of variable-length sequences.

    Each partition is padded to its own longest sequence and run through the model in calls of
    ``batch_size`` rows; the model's mask makes the padding invisible, so each row's result is
    the one the model gives for that sequence alone (up to rounding: see Determinism in the
    module docstring).

    Parameters
    ----------
    model : crnn.Sequential
        Built, without stateful layers; shipped as in :func:`predict`.  How rows are padded
        depends on its first layer:

        - ``Embedding``: rows are token ids, padded with 0; the layer must have
          ``mask_zero=True`` unless every partition's sequences have one length.
        - ``Masking``: rows are ``(timesteps, features)``, padded with its ``mask_value``.
        - anything else: rows are ``(timesteps, features)``, padded with zeros and the mask of
          the sequences' lengths passed to the model (``model(x, mask=...)``).
    data : dask.dataframe.DataFrame or dask.dataframe.Series
        Rows are sequences: lists or 1-D arrays of token ids, or lists of per-step feature lists
        (as Parquet list columns read back), or 2-D arrays.
    column : str, optional
        The column of ``data`` holding the sequences (required for a DataFrame, None for a
        Series).
    name : str, default "prediction"
        Name of the predictions column (or Series).
    batch_size, num_threads : int, optional
        As in :func:`predict`.

    Returns
    -------
    dask.dataframe.DataFrame or dask.dataframe.Series
        A DataFrame: ``data`` with the column ``name`` appended; a Series: the predictions.  One
        row per input row, same index and divisions.  Each cell holds the row's output: a 1-D
        array ``(units,)`` for a model that returns one vector per sequence, or for a model that
        returns sequences an object array of the row's ``timesteps`` per-step ``(units,)``
        arrays (padding removed).  Both write to Parquet as list columns; Dask cannot infer a
        Parquet type from an object column's metadata, so write with
        ``out.to_parquet(path, schema=None)`` (each partition's types come from its data), or
        pass the types (``schema={name: pyarrow.list_(pyarrow.float32()), ...}``).

    Raises
    ------
    TypeError, ValueError
        Bad arguments, here; a bad row (wrong feature count, a string, a missing value, an
        invalid token id), when computing, with a message that names the column, the partition
        and the row's index label.
    """
    import dask.dataframe as dd
    import pandas as pd
    _check_model(model)
    batch_size, num_threads = _check_options(batch_size, num_threads)
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: got {name!r}, expected a non-empty str")
    if isinstance(data, dd.DataFrame):
        if column is None or column not in data.columns:
            raise ValueError(f"column: got {column!r}, expected one of {list(data.columns)}")
        seqs_meta = data._meta[column]
    elif isinstance(data, dd.Series):
        if column is not None:
            raise ValueError(f"column: got {column!r} for a Series, expected None")
        seqs_meta = data._meta
    else:
        raise TypeError(f"data: got {type(data).__name__}, expected a dask.dataframe.DataFrame "
                        "or Series (for a Dask array use crnn.dask.predict)")
    if seqs_meta.dtype != object and not isinstance(seqs_meta.dtype, pd.ArrowDtype):
        hint = (" (Dask turned the lists into strings: create the frame under "
                "dask.config.set({'dataframe.convert-string': False}), or read it from Parquet)"
                if pd.api.types.is_string_dtype(seqs_meta.dtype) else "")
        raise TypeError(f"{column or 'data'}: got dtype {seqs_meta.dtype}, expected a column of "
                        f"sequences (object or list dtype){hint}")
    pad = _Padding(model)
    model_key = _ship(model)
    cells = pd.Series([], dtype=object, name=name, index=data._meta.index[:0])
    meta = cells if column is None else data._meta.assign(**{name: cells})
    return data.map_partitions(_predict_partition, model_key, column, name, pad, batch_size,
                               num_threads, meta=meta, align_dataframes=False)
