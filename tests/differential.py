"""Randomised differential testing of whole recurrent stacks and models against crnn.reference.

Grids test one thing at a time; what breaks is usually a combination (three layers of different
widths, a batch split across threads, lengths, a reverse layer in the middle). This module draws
whole random cases, runs them on the C core at several thread counts, several times each, and
compares every result with the NumPy reference:

- **stack cases**: a compiled stack (``crnn._core.RNN``) of 1-5 layers of mixed widths and mixed
  cells (SimpleRNN, LSTM, GRU reset after / before), each with its own activations and
  direction, random ``lengths`` (0 and T included), initial states (some given, some zeros; h
  and c), ``return_sequences`` / ``return_state``; the oracle chains ``crnn.reference.rnn_stack``
  one layer at a time;
- **model cases**: a ``crnn.Sequential`` of SimpleRNN, LSTM, GRU and Bidirectional layers (random
  go_backwards, merge modes, ``return_sequences`` on the last), an optional ``Masking`` layer in
  front (prefix and arbitrary masks) and ``Dense`` head; the oracle is ``tests/_model_oracle.py``.

Every case is drawn for a target threading mode ("serial", "batch" split, "units" split,
"pipeline"): its shape is redrawn until the core's own plan (``RNN.plan``) at 2 threads is that
mode, so every mode is exercised by construction, and :func:`run` reports the modes each thread
count actually planned. At each thread count a case runs ``repeats`` times: every repeat must be
bitwise identical (determinism for a fixed thread count) and within the derived tolerance of the
reference (``_helpers.derived_tol``; see its docstring).

Everything follows from one seed, so a failure reproduces from the case seed it prints:

    python tests/differential.py --cases 2000            # before a release (minutes)
    python tests/differential.py --seed 123 --cases 1    # one case again

``tests/test_differential.py`` runs a bounded, seeded sample in the test suite.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crnn  # noqa: E402
from crnn import reference  # noqa: E402

from _helpers import (ACTIVATIONS, assert_close, derived_tol, flat_states,  # noqa: E402
                      make_cell_weights, state_tol, to64, value_scale)
from _model_oracle import merge, ref_dense, ref_rnn  # noqa: E402

MODES = ("serial", "batch", "units", "pipeline")

#: Kernel / bias gain of the drawn weights (``_helpers.make_layer_weights``: U(-s, s) with
#: s = GAIN / sqrt(D + H); recurrent spectral norm 0.5). Half the suite's default, so that the
#: states of 5 relu / linear layers, and the sum of two of them in a Bidirectional merge, stay
#: below 1: the derived tolerance of a 200-step chain (T = 40 x 5 layers) then stays under the
#: float32 ceiling (eps * ceil(log2(K * 200)) * 4 <= 8.6e-6 for K <= 700).
GAIN = 0.25
DIRECTIONS = ("forward", "reverse", "bidirectional")
THREADS = (1, 2, 3, 4)
CELLS = ("simple", "lstm", "gru")
#: Activations of the gated cells: mostly bounded ones (a relu / linear LSTM's states grow with
#: T; such cases are rarer, and compared relative to their magnitude, see stack_tolerance).
GATED_ACTIVATIONS = ("tanh", "tanh", "sigmoid", "hard_sigmoid", "relu", "linear")
RECURRENT_ACTIVATIONS = ("sigmoid", "sigmoid", "hard_sigmoid", "tanh")


def _draw_cell(rng: np.random.Generator) -> dict:
    """A layer's cell: kind, activations, reset placement (GRU), for the core's per-layer lists."""
    cell = CELLS[int(rng.integers(len(CELLS)))]
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    return {"cell": cell,
            "activation": pick(ACTIVATIONS if cell == "simple" else GATED_ACTIVATIONS),
            "recurrent_activation": pick(RECURRENT_ACTIVATIONS),
            "reset_after": bool(rng.random() < 0.6)}


# ----------------------------------------------------------------------------------------------
# Drawing shapes for a target threading mode
# ----------------------------------------------------------------------------------------------
def _widths(rng: np.random.Generator, n: int, lo: int, hi: int) -> List[int]:
    """``n`` log-uniform widths in [lo, hi], so small and odd sizes are as common as large."""
    return [int(round(math.exp(rng.uniform(math.log(lo), math.log(hi))))) for _ in range(n)]


def _draw_shape(rng: np.random.Generator, mode: str) -> Tuple[int, int, int, List[int]]:
    """(batch, timesteps, input_dim, units per layer) aimed at ``mode``."""
    L = int(rng.integers(1, 6))
    if mode == "batch":
        return (int(rng.integers(8, 65)), int(rng.integers(4, 41)), _widths(rng, 1, 8, 200)[0],
                _widths(rng, L, 16, 200))
    if mode == "units":
        if rng.random() < 0.5:  # batch 1: a layer narrower than 128 whose weights outgrow L1
            units = _widths(rng, 1, 48, 127)
            return (1, int(rng.integers(30, 41)), int(rng.integers(1, units[0] // 2 + 1)), units)
        return (int(rng.integers(1, 8)), int(rng.integers(1, 41)), _widths(rng, 1, 1, 300)[0],
                _widths(rng, L, 128, 320))
    if mode == "pipeline":
        units = _widths(rng, L, 8, 300)
        units[int(rng.integers(L))] = int(rng.integers(8, 128))  # too narrow for the units split
        return (int(rng.integers(1, 8)), int(rng.integers(16, 41)), _widths(rng, 1, 32, 400)[0],
                units)
    return (int(rng.integers(1, 65)), int(rng.integers(1, 41)), _widths(rng, 1, 1, 64)[0],
            _widths(rng, L, 1, 48))


def _plan_at(handle, batch: int, steps: int, threads: int) -> Tuple[str, int]:
    old = crnn.get_num_threads()
    crnn.set_num_threads(threads)
    try:
        return handle.plan(batch, steps)
    finally:
        crnn.set_num_threads(old)


# ----------------------------------------------------------------------------------------------
# Stack cases: a compiled stack with per-layer activations and directions
# ----------------------------------------------------------------------------------------------
@dataclass
class StackCase:
    seed: int
    mode: str
    dtype: type
    x: np.ndarray
    weights: list
    cells: List[dict]
    directions: List[str]
    lengths: Optional[np.ndarray]
    h0: Optional[list]
    return_sequences: bool
    return_state: bool
    handle: object = field(repr=False, default=None)

    def describe(self) -> str:
        units = [len(w[0][1]) for w in self.weights]
        cells = ["{cell}/{activation}/{recurrent_activation}/{reset_after}".format(**c)
                 for c in self.cells]
        return (f"stack seed={self.seed} mode={self.mode} dtype={np.dtype(self.dtype).name} "
                f"x={self.x.shape} units={units} cells={cells} dir={self.directions} "
                f"lengths={'yes' if self.lengths is not None else 'no'} "
                f"h0={'yes' if self.h0 is not None else 'no'} rs={self.return_sequences} "
                f"rstate={self.return_state}")


def draw_stack_case(seed: int, mode: str, max_tries: int = 200) -> StackCase:
    """A random stack whose call plans ``mode`` at 2 threads (the shape is redrawn until it does)."""
    rng = np.random.default_rng(seed)
    dtype = (np.float32, np.float64)[int(rng.integers(2))]
    for _ in range(max_tries):
        B, T, D, units = _draw_shape(rng, mode)
        L = len(units)
        if mode == "units" and rng.random() < 0.25:
            directions = ["bidirectional"] * L  # one direction per thread
            units = _widths(rng, L, 16, 200)
        else:
            directions = [DIRECTIONS[int(i)] for i in rng.integers(0, 3, L)]
        cells = [_draw_cell(rng) for _ in range(L)]
        weights, d = [], D
        for h, dn, c in zip(units, directions, cells):
            ndir = 2 if dn == "bidirectional" else 1
            bias, rbias = bool(rng.random() < 0.8), bool(rng.random() < 0.5)
            weights.append([make_cell_weights(rng, c["cell"], d, h, dtype, bias, rbias, gain=GAIN)
                            for _ in range(ndir)])
            d = h * ndir
        handle = crnn._core.RNN(weights, direction=directions, dtype=dtype,
                                **{k: [c[k] for c in cells] for k in cells[0]})
        if _plan_at(handle, B, T, 2)[0] == mode:
            break
    else:
        raise AssertionError(f"seed {seed}: no shape planning {mode!r} in {max_tries} draws")
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    lengths = None
    if rng.random() < 0.5:
        lengths = rng.integers(0, T + 1, B)
        lengths[int(rng.integers(B))] = T
        if B > 1 and rng.random() < 0.5:
            lengths[int(rng.integers(B))] = 0
    h0 = None
    if rng.random() < 0.5:
        def state(h: int):
            return None if rng.random() < 0.3 else rng.uniform(-1, 1, (B, h)).astype(dtype)
        h0 = [[state(len(w[1])), state(len(w[1]))] if c["cell"] == "lstm" else state(len(w[1]))
              for layer, c in zip(weights, cells) for w in layer]
    return StackCase(seed, mode, dtype, x, weights, cells, directions, lengths, h0,
                     bool(rng.random() < 0.5), bool(rng.random() < 0.5), handle)


def reference_stack(case: StackCase):
    """The oracle: ``reference.rnn_stack`` layer by layer, in float64."""
    inp, states, e = to64(case.x), [], 0
    h0 = case.h0
    for w, c, dn in zip(case.weights, case.cells, case.directions):
        n = len(w)
        out, st = reference.rnn_stack(
            inp, [to64(w)], direction=dn, **c,
            initial_state=None if h0 is None else to64(h0[e:e + n]), lengths=case.lengths,
            return_sequences=True, return_state=True)
        states += st
        inp, e = out, e + n
    last = [s[0] if isinstance(s, list) else s for s in states[-len(case.weights[-1]):]]
    out = inp if case.return_sequences else np.concatenate(last, axis=1)
    return out, states


def stack_tolerance(case: StackCase, expected) -> float:
    """:func:`_helpers.derived_tol` with K the longest dot product and T * L dependent steps;
    with gated cells the states are not bounded by 1 (an LSTM's c; h through relu / linear):
    relative to their magnitude (:func:`_helpers.state_tol`)."""
    k, d = 0, case.x.shape[2]
    for w in case.weights:
        h = len(w[0][1])
        k, d = max(k, d + h), h * len(w)
    steps = case.x.shape[1] * len(case.weights)
    if all(c["cell"] == "simple" for c in case.cells):
        return derived_tol(case.dtype, k, steps, value_scale(expected))
    return state_tol(case.dtype, k, steps, value_scale(expected))


def check_stack_case(case: StackCase, threads: Sequence[int] = THREADS,
                     repeats: int = 2) -> Dict[int, str]:
    """Run ``case`` at each thread count ``repeats`` times; return {threads: planned mode}."""
    exp_out, exp_states = reference_stack(case)
    tol = stack_tolerance(case, [exp_out, exp_states])
    B, T = case.x.shape[:2]
    planned = {}
    for n in threads:
        crnn.set_num_threads(n)
        planned[n] = case.handle.plan(B, T)[0]
        first = None
        for r in range(repeats):
            got = case.handle.forward(case.x, initial_state=case.h0, lengths=case.lengths,
                                      return_sequences=case.return_sequences,
                                      return_state=case.return_state)
            out, states = got if case.return_state else (got, None)
            what = f"{case.describe()} threads={n} ({planned[n]}) repeat={r}"
            if first is None:
                first = (out, flat_states(states))
                assert_close(out, exp_out, tol, what + ": output", dtype=case.dtype)
                for i, (s, e) in enumerate(zip(flat_states(states), flat_states(exp_states))):
                    assert_close(s, e, tol, what + f": state {i}", dtype=case.dtype)
            else:
                assert out.tobytes() == first[0].tobytes(), what + ": output not bitwise repeatable"
                for i, s in enumerate(flat_states(states)):
                    assert s.tobytes() == first[1][i].tobytes(), \
                        what + f": state {i} not bitwise repeatable"
    return planned


# ----------------------------------------------------------------------------------------------
# Model cases: Sequential models of SimpleRNN / Bidirectional / Masking / Dense
# ----------------------------------------------------------------------------------------------
@dataclass
class ModelCase:
    seed: int
    mode: str
    dtype: type
    x: np.ndarray
    model: object = field(repr=False)
    spec: list = field(repr=False)   # per layer: (kind, options, weights)
    masking: bool = False

    def describe(self) -> str:
        kinds = [(k, o.get("cell"), o.get("units"), o.get("activation"),
                  o.get("recurrent_activation"), o.get("reset_after"), o.get("merge_mode"),
                  o.get("go_backwards"), o.get("return_sequences")) for k, o, _ in self.spec]
        return (f"model seed={self.seed} mode={self.mode} dtype={np.dtype(self.dtype).name} "
                f"x={self.x.shape} masking={self.masking} layers={kinds}")


def _layer_weights(rng: np.random.Generator, cell: dict, d: int, h: int, dtype,
                   bias: bool) -> list:
    """A layer's get_weights() list (Keras layout: a reset-after GRU's bias is (2, 3H))."""
    gru_after = cell["cell"] == "gru" and cell["reset_after"]
    k, r, b, rb = make_cell_weights(rng, cell["cell"], d, h, dtype, bias, bias and gru_after,
                                    gain=GAIN)
    if not bias:
        return [k, r]
    return [k, r, np.stack([b, rb]) if gru_after else b]


def _model_handles(model) -> list:
    """The compiled stacks a model's fused runs call (to read their plans)."""
    plan = model._get_plan()
    return [step.handle for step in plan if hasattr(step, "handle")]


def draw_model_case(seed: int, mode: str, max_tries: int = 200) -> ModelCase:
    rng = np.random.default_rng(seed)
    dtype = (np.float32, np.float64)[int(rng.integers(2))]
    for _ in range(max_tries):
        B, T, D, units = _draw_shape(rng, mode)
        L = len(units)
        masking = bool(rng.random() < 0.3)
        layers, spec, d = [], [], D
        if masking:
            layers.append(crnn.Masking(0.0, input_shape=(None, D), dtype=dtype))
        for i, h in enumerate(units):
            last = i == L - 1
            cell = _draw_cell(rng)
            kw = {"activation": cell["activation"]}
            if cell["cell"] != "simple":
                kw["recurrent_activation"] = cell["recurrent_activation"]
            if cell["cell"] == "gru":
                kw["reset_after"] = cell["reset_after"]
            cls = {"simple": crnn.SimpleRNN, "lstm": crnn.LSTM, "gru": crnn.GRU}[cell["cell"]]
            rs = bool(rng.random() < 0.5) if last else True
            bias = bool(rng.random() < 0.8)
            opts = dict(units=h, return_sequences=rs, **cell)
            if rng.random() < 0.35:
                merge_mode = ("concat", "concat", "sum", "mul", "ave")[int(rng.integers(5))]
                ws = [_layer_weights(rng, cell, d, h, dtype, bias) for _ in range(2)]
                layer = crnn.Bidirectional(cls(h, use_bias=bias, return_sequences=rs, dtype=dtype,
                                               **kw), merge_mode=merge_mode)
                layer.build((None, None, d))
                layer.set_weights([a for w in ws for a in w])
                spec.append(("bidirectional", dict(opts, merge_mode=merge_mode), ws))
                d = 2 * h if merge_mode == "concat" else h
            else:
                gb = bool(rng.random() < 0.2)
                w = _layer_weights(rng, cell, d, h, dtype, bias)
                layer = cls(h, use_bias=bias, return_sequences=rs, go_backwards=gb, dtype=dtype,
                            **kw)
                layer.build((None, None, d))
                layer.set_weights(w)
                spec.append(("rnn", dict(opts, go_backwards=gb), w))
                d = h
            layers.append(layer)
        if rng.random() < 0.4:
            # |w| <= 1 / (d + 1): every output sums at most one input's worth of |values|, so
            # the head does not amplify the recurrent part's error (see check_model_case)
            u = int(rng.integers(1, 9))
            s = 1.0 / (d + 1)
            w = [rng.uniform(-s, s, (d, u)).astype(dtype), rng.uniform(-s, s, (u,)).astype(dtype)]
            act = ("linear", "tanh", "sigmoid", "softmax")[int(rng.integers(4))]
            dense = crnn.Dense(u, activation=act, dtype=dtype)
            dense.build((None, d))
            dense.set_weights(w)
            layers.append(dense)
            spec.append(("dense", dict(units=u, activation=act), w))
        model = crnn.Sequential(layers)
        model.build((None, None, D))
        handles = _model_handles(model)
        if mode == "serial" or any(_plan_at(h, B, T, 2)[0] == mode for h in handles):
            break
    else:
        raise AssertionError(f"seed {seed}: no model planning {mode!r} in {max_tries} draws")
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    if masking:
        m = rng.random((B, T)) < 0.7
        if rng.random() < 0.5:  # right-padded: runs as lengths
            m = np.arange(T)[None, :] < rng.integers(0, T + 1, B)[:, None]
        x[~m] = 0
    return ModelCase(seed, mode, dtype, x, model, spec, masking)


def reference_model(case: ModelCase):
    x = to64(case.x)
    mask = np.any(x != 0.0, axis=-1) if case.masking else None
    out = x
    for kind, o, w in case.spec:
        if kind == "dense":
            out = ref_dense(out, w, o["activation"])
            continue
        rs = o["return_sequences"]
        cell = {k: o[k] for k in ("cell", "activation", "recurrent_activation", "reset_after")}
        if kind == "rnn":
            out, _ = ref_rnn(out, w, mask, go_backwards=o["go_backwards"], return_sequences=rs,
                             **cell)
        else:
            y, _ = ref_rnn(out, w[0], mask, return_sequences=rs, zero_output=rs, **cell)
            y_rev, _ = ref_rnn(out, w[1], mask, go_backwards=True, return_sequences=rs,
                               zero_output=rs, **cell)
            if rs:
                y_rev = y_rev[:, ::-1]
            out = merge(o["merge_mode"], y, y_rev)
        if not rs:
            mask = None
    return out


def check_model_case(case: ModelCase, threads: Sequence[int] = THREADS,
                     repeats: int = 2) -> Dict[int, str]:
    exp = reference_model(case)
    # The chain of dependent dot products is T per recurrent layer plus one for a Dense head;
    # the head's weights sum to at most 1 per output and its activations have slopes <= 1, so
    # it adds its own rounding but no amplification; a sum / mul merge at most doubles an
    # error, within the factor 4 of derived_tol (measured errors stay under 4 eps * scale).
    k, d = 0, case.x.shape[2]
    for kind, o, _ in case.spec:
        k, d = max(k, d + o["units"]), 2 * o["units"]
    steps = case.x.shape[1] * len(case.spec)
    simple = all(o.get("cell", "simple") == "simple" for _, o, _ in case.spec)
    tol = (derived_tol if simple else state_tol)(case.dtype, k, steps, value_scale(exp))
    B, T = case.x.shape[:2]
    planned = {}
    for n in threads:
        crnn.set_num_threads(n)
        modes = [h.plan(B, T)[0] for h in _model_handles(case.model)]
        planned[n] = next((m for m in modes if m != "serial"), "serial")
        first = None
        for r in range(repeats):
            out = case.model(case.x)
            what = f"{case.describe()} threads={n} ({modes}) repeat={r}"
            if first is None:
                first = out
                assert_close(out, exp, tol, what, dtype=case.dtype)
            else:
                assert out.tobytes() == first.tobytes(), what + ": not bitwise repeatable"
    return planned


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------
def case_seeds(seed: int, n: int) -> List[Tuple[int, str, str]]:
    """(case seed, kind, target mode) for ``n`` cases: kinds and modes in rotation."""
    out = []
    for i in range(n):
        kind = ("stack", "model")[i % 2]
        mode = MODES[(i // 2) % len(MODES)]
        out.append((seed * 1_000_003 + i, kind, mode))
    return out


def run_one(case_seed: int, kind: str, mode: str, threads: Sequence[int] = THREADS,
            repeats: int = 2) -> Dict[int, str]:
    if kind == "stack":
        return check_stack_case(draw_stack_case(case_seed, mode), threads, repeats)
    return check_model_case(draw_model_case(case_seed, mode), threads, repeats)


def run(seed: int, n: int, threads: Sequence[int] = THREADS, repeats: int = 2,
        verbose: bool = False) -> Dict[str, int]:
    """Run ``n`` cases; return how many (case, thread count) runs planned each mode."""
    seen = {m: 0 for m in MODES}
    old = crnn.get_num_threads()
    try:
        for i, (cs, kind, mode) in enumerate(case_seeds(seed, n)):
            t0 = time.perf_counter()
            planned = run_one(cs, kind, mode, threads, repeats)
            for m in planned.values():
                seen[m] += 1
            if verbose:
                print(f"[{i + 1}/{n}] {kind} seed={cs} target={mode} planned={planned} "
                      f"{time.perf_counter() - t0:.2f}s", flush=True)
    finally:
        crnn.set_num_threads(old)
    return seen


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=400, help="number of random cases (default 400)")
    p.add_argument("--seed", type=int, default=int(time.time()) % 100000,
                   help="master seed (default: from the clock; printed)")
    p.add_argument("--repeats", type=int, default=3, help="runs per thread count (default 3)")
    p.add_argument("--threads", default="1,2,3,4", help="thread counts (default 1,2,3,4)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    threads = tuple(int(t) for t in a.threads.split(","))
    print(f"seed {a.seed}: {a.cases} cases, threads {threads}, {a.repeats} repeats", flush=True)
    seen = run(a.seed, a.cases, threads, a.repeats, verbose=not a.quiet)
    print("planned modes (case x thread count):", seen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
