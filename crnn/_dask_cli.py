"""``python -m crnn predict MODEL INPUT OUTPUT``: score a ``.npy`` file or a Zarr array with Dask.

Input and output never pass whole through one process: every task reads its own rows of INPUT
(a memory map of the ``.npy`` file, or the Zarr chunks), runs the model on them and writes its
rows of OUTPUT, which is created at full size (sparse) under a temporary name beside OUTPUT and
renamed to OUTPUT only when every row is written.  On a cluster (``--scheduler``), the workers
must see INPUT and OUTPUT at the same paths as this process (a shared file system).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from typing import Any, Optional, Sequence, Tuple

import numpy as np

#: Input bytes per task the default ``--chunk-size`` aims at.
CHUNK_BYTES = 16 << 20


class _NpyRows:
    """Rows of a ``.npy`` file, written through a memory map opened per write."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __setitem__(self, rows: slice, value: np.ndarray) -> None:
        mm = np.load(self.path, mmap_mode="r+")
        mm[rows] = value
        mm.flush()
        del mm


class _ZarrRows:
    """Rows of a Zarr array, opened per write (one write per Zarr chunk)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __setitem__(self, rows: slice, value: np.ndarray) -> None:
        import zarr
        zarr.open_array(self.path, mode="r+")[rows] = value


def _read_npy_rows(path: str, block_info: Any = None) -> np.ndarray:
    (a, b) = block_info[None]["array-location"][0]
    mm = np.load(path, mmap_mode="r")
    rows = np.array(mm[a:b])
    del mm
    return rows


def _write_rows(block: np.ndarray, target: Any, block_info: Any = None) -> np.ndarray:
    (a, b) = block_info[0]["array-location"][0]
    target[a:b] = block
    return np.array([b - a], dtype=np.int64)


def _chunk_rows(n: int, row_bytes: int, batch_size: int, threads: int) -> int:
    """Default rows per task: about CHUNK_BYTES of input, at least 4 tasks per thread when the
    input allows, a multiple of batch_size."""
    rows = max(CHUNK_BYTES // max(row_bytes, 1), 1)
    rows = min(rows, -(-n // (4 * threads)) if n else rows)
    return max(-(-rows // batch_size), 1) * batch_size


def _open_input(path: str, fmt: str) -> Tuple[Tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` of INPUT, from its header (no data is read)."""
    if fmt == "npy":
        mm = np.load(path, mmap_mode="r")
        shape, dtype = mm.shape, mm.dtype
        del mm
        return shape, dtype
    import zarr
    z = zarr.open_array(path, mode="r")
    return z.shape, z.dtype


def _input_array(path: str, fmt: str, shape: Tuple[int, ...], dtype: np.dtype, rows: int) -> Any:
    import dask.array as da
    from dask.base import tokenize
    chunks = (tuple(min(rows, shape[0] - s) for s in range(0, shape[0], rows)) or (0,),) + \
        tuple((d,) for d in shape[1:])
    if fmt == "npy":
        st = os.stat(path)
        return da.map_blocks(_read_npy_rows, path, chunks=chunks, dtype=dtype,
                             meta=np.empty((0,) * len(shape), dtype),
                             name="crnn-read-" + tokenize(path, st.st_mtime_ns, st.st_size, rows))
    x = da.from_zarr(path)
    return x.rechunk(chunks)


def _format(path: str) -> str:
    """"npy" for a path ending in .npy, else "zarr" (a Zarr array is a directory)."""
    return "npy" if path.endswith(".npy") else "zarr"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m crnn predict",
        description="Run a crnn model on every sequence of INPUT and write the results to OUTPUT "
                    "(model.predict, chunk by chunk on Dask: locally on this machine's cores, or "
                    "on a Dask cluster with --scheduler). INPUT is a .npy file or a Zarr array "
                    "(batch, timesteps, features), or (batch, timesteps) token ids for a model "
                    "starting with an Embedding; OUTPUT is written in the same format, under a "
                    "temporary name renamed to OUTPUT once complete. No process holds more than "
                    "a few chunks. Needs the dask extra: pip install 'crnn[dask]'.")
    p.add_argument("model", metavar="MODEL", help="a .crnn file (crnn.load_model; a model from "
                   "Keras, PyTorch or ONNX: crnn.load_keras(...).save('model.crnn') and so on)")
    p.add_argument("input", metavar="INPUT", help="a .npy file or a Zarr array directory")
    p.add_argument("output", metavar="OUTPUT", help="same format as INPUT")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a Dask scheduler (tcp://host:8786); default: run locally, one Dask "
                        "thread per core")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="sequences per crnn call (default: 32, as model.predict)")
    p.add_argument("--chunk-size", type=int, default=None, metavar="N",
                   help="sequences per Dask task (rounded up to a multiple of --batch-size; "
                        f"default: about {CHUNK_BYTES >> 20} MiB of input, and at least 4 tasks "
                        "per Dask thread)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="crnn threads per call (default: 1, one per Dask thread)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return p


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _within(path: str, top: str) -> bool:
    """Whether `path` is `top` or lies inside it (both real, absolute paths)."""
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def _check_output(args: argparse.Namespace, dst: str, fmt: str) -> None:
    """Refuse an OUTPUT the run could not write, or whose replacement (--overwrite removes what
    stands there, a whole directory for Zarr) would destroy something else: INPUT or MODEL, a
    directory holding either, anything inside them, or anything but an earlier output (a .npy
    file; a directory holding a Zarr array): not the working directory, a device, or the file
    a symlink at OUTPUT points to. `dst`: OUTPUT's real path."""
    where = os.path.dirname(dst)
    if not os.path.isdir(where):
        raise FileNotFoundError(f"OUTPUT: got {args.output!r}, whose directory {where!r} is not "
                                "an existing directory")
    if fmt == "npy" and args.output.endswith(("/", os.sep)):
        raise ValueError(f"OUTPUT: got {args.output!r}, expected the path of a .npy file (no "
                         "trailing separator)")
    for name, path in (("INPUT", args.input), ("MODEL", args.model)):
        other = os.path.realpath(path)
        if (_within(dst, other) or _within(other, dst)
                or (os.path.exists(dst) and os.path.samefile(path, dst))):
            raise ValueError(f"OUTPUT: got {args.output!r}, which is {name} ({path!r}), holds it "
                             "or lies inside it; expected a path apart from it")
    if not os.path.lexists(dst):
        return
    if not args.overwrite:
        raise FileExistsError(f"OUTPUT: {args.output!r} exists (pass --overwrite to replace it)")
    if not (_npy_file(dst) if fmt == "npy" else _zarr_array(dst)):
        want = "a .npy file" if fmt == "npy" else "a directory holding a Zarr array"
        raise ValueError(f"OUTPUT: got {args.output!r}, which exists and is not an earlier "
                         f"output ({want}); --overwrite replaces only that")


def _npy_file(path: str) -> bool:
    """Whether `path` is a regular file in NumPy's .npy format (its magic string)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


#: Largest Zarr array metadata file read (its attributes included).
_ZARR_META_MAX = 16 << 20


def _zarr_array(path: str) -> bool:
    """Whether the directory `path` holds a Zarr array (not a group, nor a folder that merely
    has a file of the metadata's name): version 2's .zarray or version 3's zarr.json, a regular
    file of at most _ZARR_META_MAX bytes (never a FIFO or a device) whose JSON describes an
    array."""
    if not os.path.isdir(path):
        return False
    for name, is_array in ((".zarray", lambda m: m.get("zarr_format") == 2 and "shape" in m),
                           ("zarr.json", lambda m: m.get("node_type") == "array")):
        meta_path = os.path.join(path, name)
        try:
            if (not os.path.isfile(meta_path)
                    or os.path.getsize(meta_path) > _ZARR_META_MAX):
                continue
            with open(meta_path, "rb") as f:
                meta = json.loads(f.read(_ZARR_META_MAX + 1))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and is_array(meta):
            return True
    return False


def _run(args: argparse.Namespace) -> Tuple[Tuple[int, ...], np.dtype, float]:
    import crnn.dask
    model = crnn.load_model(args.model)
    # the paths the OS resolves (a `..` after a symlink leaves the link's target, where
    # abspath would cancel the two on the string), and OUTPUT through a symlink to an earlier
    # output: what is read, checked, removed and written is the same
    src = os.path.realpath(args.input)
    dst = os.path.realpath(args.output)
    fmt = _format(os.path.abspath(args.input))
    if not (os.path.isfile(src) if fmt == "npy" else os.path.isdir(src)):
        raise FileNotFoundError(f"INPUT: got {args.input!r}, expected an existing .npy file or "
                                "Zarr array (a directory)")
    if _format(os.path.abspath(args.output)) != fmt:
        want = "a .npy file" if fmt == "npy" else "a Zarr directory (not .npy)"
        raise ValueError(f"OUTPUT: got {args.output!r}, expected {want}, the format of INPUT")
    _check_output(args, dst, fmt)
    client = None
    if args.scheduler:
        from distributed import Client
        client = Client(args.scheduler, timeout="30s")
    try:
        threads = sum(client.nthreads().values()) if client is not None else (os.cpu_count() or 1)
        shape, dtype = _open_input(src, fmt)
        if len(shape) < 2:
            raise ValueError(f"INPUT: got shape {shape}, expected (batch, timesteps, ...)")
        rows = args.chunk_size or _chunk_rows(shape[0], int(np.prod(shape[1:])) * dtype.itemsize,
                                              args.batch_size, threads)
        rows = -(-rows // args.batch_size) * args.batch_size
        x = _input_array(src, fmt, shape, dtype, rows)
        y = crnn.dask.predict(model, x, batch_size=args.batch_size, num_threads=args.threads)
        tmp = os.path.join(os.path.dirname(dst),
                           f".{os.path.basename(dst)}.{uuid.uuid4().hex}.partial")
        try:
            if fmt == "npy":
                np.lib.format.open_memmap(tmp, mode="w+", dtype=y.dtype, shape=y.shape).flush()
                target: Any = _NpyRows(tmp)
            else:  # Zarr chunks = task rows: no two tasks write into one Zarr chunk
                import zarr
                zarr.open_array(tmp, mode="w", shape=y.shape, dtype=y.dtype,
                                chunks=(rows,) + y.shape[1:])
                target = _ZarrRows(tmp)
            written = y.map_blocks(_write_rows, target, dtype=np.int64,
                                   chunks=((1,) * y.numblocks[0],),
                                   drop_axis=list(range(1, y.ndim))).sum()
            start = time.perf_counter()
            total = _compute(written, client, args.quiet)
            elapsed = time.perf_counter() - start
            if total != y.shape[0]:  # pragma: no cover - a task that returned without writing
                raise RuntimeError(f"OUTPUT: {total} of {y.shape[0]} rows written")
            if args.overwrite and (os.path.isdir(dst) or os.path.isdir(tmp)):
                # os.replace puts a file over a file in one step, but neither a directory
                # (Zarr) over a file nor anything over a directory
                _remove(dst)
            os.replace(tmp, dst)
        except BaseException:
            _remove(tmp)
            raise
        return tuple(y.shape), y.dtype, elapsed
    finally:
        if client is not None:
            client.close()


def _compute(written: Any, client: Any, quiet: bool) -> int:
    """Run the graph with a progress bar (Dask's, on stdout) and return the rows written."""
    if client is not None:
        from distributed import progress
        future = client.compute(written)
        if not quiet:
            progress(future)
            print()
        return int(future.result())
    import dask
    if quiet:
        return int(dask.compute(written, scheduler="threads")[0])
    from dask.diagnostics import ProgressBar
    with ProgressBar():
        return int(dask.compute(written, scheduler="threads")[0])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m crnn predict``; returns the exit status."""
    args = _parser().parse_args(argv)
    for name in ("batch_size", "chunk_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            _parser().error(f"--{name.replace('_', '-')}: got {value}, expected an int >= 1")
    try:
        import dask.array  # noqa: F401 - only: is the extra installed?
    except ImportError as err:
        print(f"python -m crnn predict: needs Dask: pip install 'crnn[dask]' ({err})",
              file=sys.stderr)
        return 2
    try:
        shape, dtype, elapsed = _run(args)
    except Exception as err:  # the message names what is wrong (argument, chunk, file)
        print(f"python -m crnn predict: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    if not args.quiet:
        rate = shape[0] / elapsed if elapsed > 0 else float("inf")
        print(f"wrote {args.output}: shape {shape}, {dtype}, {shape[0]} sequences in "
              f"{elapsed:.2f} s ({rate:,.0f}/s)")
    return 0
