"""``python -m crnn``: run the RNN tutorial's examples on crnn, then a short timing table.

The examples are those of the seed tutorial (wikidocs "순환 신경망(RNN)"), written
for Keras and run here as written with ``crnn`` in place of ``tensorflow.keras``:
the three Sequential/summary examples, the NumPy walk-through of the
recurrence, and the two-layer (deep) RNN, then the same deep model with the
LSTM and GRU layers the tutorial names as SimpleRNN's family.  Each printed
summary is compared with the one the tutorial shows, every result with
``crnn.reference``.  The exit status is 1 if any check fails.

``python -m crnn predict MODEL INPUT OUTPUT ...`` scores a ``.npy`` file or a Zarr array with
Dask instead (:mod:`crnn._dask_cli`, needs the dask extra).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable, List, Optional, Sequence

import numpy as np

import crnn
from crnn import reference
from crnn.layers import GRU, LSTM, Bidirectional, SimpleRNN, clear_session
from crnn.models import Sequential

# The summaries exactly as the tutorial prints them (trailing spaces included).
TUTORIAL_SUMMARIES = [
    """Model: "sequential"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
simple_rnn (SimpleRNN)       (None, 3)                 42        
=================================================================
Total params: 42
Trainable params: 42
Non-trainable params: 0
_________________________________________________________________""",
    """Model: "sequential_1"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
simple_rnn_1 (SimpleRNN)     (8, 3)                    42        
=================================================================
Total params: 42
Trainable params: 42
Non-trainable params: 0
_________________________________________________________________""",
    """Model: "sequential_2"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
simple_rnn_2 (SimpleRNN)     (8, 2, 3)                 42        
=================================================================
Total params: 42
Trainable params: 42
Non-trainable params: 0
_________________________________________________________________""",
]

# np.random.seed (the NumPy walkthrough) takes seeds below 2**32, and layers get seed + 2
SEED_MAX = 2**32 - 3

BENCH_SHAPES = [(8, 2, 10, 3), (1, 10, 4, 8), (16, 50, 128, 128), (1, 100, 128, 256)]

_failures: List[str] = []


def _heading(text: str) -> None:
    print()
    print(text)
    print("-" * len(text))


def _check(ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    if not ok:
        _failures.append(what)


def _summary_text(model: Sequential) -> str:
    lines: List[str] = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    print(text)
    return text


def keras_examples(seed: int) -> None:
    """Section 2 of the tutorial: the three Sequential + summary examples."""
    _heading("1. Keras examples (tutorial section 2), with crnn in place of keras")
    rng = np.random.default_rng(seed)
    examples = [
        ("model.add(SimpleRNN(3, input_shape=(2,10)))",
         lambda m: m.add(SimpleRNN(3, input_shape=(2, 10)))),
        ("model.add(SimpleRNN(3, batch_input_shape=(8,2,10)))",
         lambda m: m.add(SimpleRNN(3, batch_input_shape=(8, 2, 10)))),
        ("model.add(SimpleRNN(3, batch_input_shape=(8,2,10)), return_sequences=True)",
         lambda m: m.add(SimpleRNN(3, batch_input_shape=(8, 2, 10)), return_sequences=True)),
    ]
    expected_out = [(8, 3), (8, 3), (8, 2, 3)]
    for (code, add), tutorial, want in zip(examples, TUTORIAL_SUMMARIES, expected_out):
        print()
        print(">>> from crnn.models import Sequential")
        print(">>> from crnn.layers import SimpleRNN")
        print(">>> model = Sequential()")
        print(f">>> {code}")
        print(">>> model.summary()")
        model = Sequential()
        add(model)
        text = _summary_text(model)
        _check(text == tutorial, "summary is character for character the tutorial's")
        x = rng.random((8, 2, 10))
        y = model.predict(x)
        print(f">>> model.predict(x).shape   # x: {x.shape}")
        print(y.shape)
        _check(y.shape == want, f"output shape {y.shape} == {want}")


def numpy_walkthrough(seed: int) -> None:
    """Section 3 of the tutorial: the recurrence written out in NumPy, checked against crnn."""
    _heading("2. The NumPy walk-through (tutorial section 3) vs crnn")
    np.random.seed(seed)
    timesteps = 10
    input_dim = 4
    hidden_units = 8

    inputs = np.random.random((timesteps, input_dim))
    hidden_state_t = np.zeros((hidden_units,))
    print("initial hidden state:", hidden_state_t)

    Wx = np.random.random((hidden_units, input_dim))
    Wh = np.random.random((hidden_units, hidden_units))
    b = np.random.random((hidden_units,))
    print("Wx shape:", np.shape(Wx), " Wh shape:", np.shape(Wh), " b shape:", np.shape(b))

    total_hidden_states = []
    for input_t in inputs:
        output_t = np.tanh(np.dot(Wx, input_t) + np.dot(Wh, hidden_state_t) + b)
        total_hidden_states.append(list(output_t))
        hidden_state_t = output_t
    total_hidden_states = np.stack(total_hidden_states, axis=0)
    print("hidden states of every timestep (timesteps, output_dim):")
    print(total_hidden_states)

    # Keras layout: kernel = Wx.T (input_dim, units), recurrent_kernel = Wh.T.
    fast = crnn.simple_rnn(inputs[None], Wx.T, Wh.T, b, return_sequences=True, dtype="float64")[0]
    ref = reference.simple_rnn(inputs[None], Wx.T, Wh.T, b, return_sequences=True)[0]
    layer = SimpleRNN(hidden_units, input_dim=input_dim, return_sequences=True, dtype="float64",
                      name="walkthrough")
    layer.set_weights([Wx.T, Wh.T, b])
    via_layer = layer(inputs[None])[0]
    for name, got in (("crnn.simple_rnn", fast), ("crnn.reference.simple_rnn", ref),
                      ("SimpleRNN layer", via_layer)):
        diff = float(np.max(np.abs(got - total_hidden_states)))
        print(f"  max |{name} - tutorial loop| = {diff:.3g}")
        _check(diff <= 1e-12, f"{name} equals the tutorial loop (float64)")


def deep_rnn(seed: int) -> None:
    """Section 4 of the tutorial: two stacked SimpleRNN layers."""
    _heading("3. Deep RNN (tutorial section 4)")
    hidden_units = 8
    print(">>> model = Sequential()")
    print(">>> model.add(SimpleRNN(hidden_units, input_length=10, input_dim=5, "
          "return_sequences=True))")
    print(">>> model.add(SimpleRNN(hidden_units, return_sequences=True))")
    print(">>> model.summary()")
    model = Sequential()
    model.add(SimpleRNN(hidden_units, input_length=10, input_dim=5, return_sequences=True,
                        seed=seed))
    model.add(SimpleRNN(hidden_units, return_sequences=True, seed=seed + 1))
    _summary_text(model)
    x = np.random.default_rng(seed).random((4, 10, 5))
    y = model.predict(x)
    print(f">>> model.predict(x).shape   # x: {x.shape}")
    print(y.shape)
    _check(y.shape == (4, 10, hidden_units), f"output shape {y.shape} == (4, 10, {hidden_units})")
    weights = model.get_weights()
    want = reference.simple_rnn_stack(x.astype(np.float32), [[weights[0:3]], [weights[3:6]]])
    diff = float(np.max(np.abs(y - want)))
    print(f"  max |model - crnn.reference.simple_rnn_stack| = {diff:.3g}")
    _check(diff <= 1e-5, "deep model equals the reference (float32)")


def gated_rnn(seed: int) -> None:
    """The deep model again with LSTM and GRU layers (one C call for the whole stack)."""
    _heading("4. Deep RNN with LSTM and GRU layers (SimpleRNN's family)")
    hidden_units = 8
    print(">>> model = Sequential()")
    print(">>> model.add(LSTM(hidden_units, input_length=10, input_dim=5, return_sequences=True))")
    print(">>> model.add(Bidirectional(GRU(hidden_units, return_sequences=True)))")
    print(">>> model.add(SimpleRNN(hidden_units))")
    print(">>> model.summary()")
    model = Sequential()
    model.add(LSTM(hidden_units, input_length=10, input_dim=5, return_sequences=True, seed=seed))
    model.add(Bidirectional(GRU(hidden_units, return_sequences=True, seed=seed + 1)))
    model.add(SimpleRNN(hidden_units, seed=seed + 2))
    text = _summary_text(model)
    counts = [4 * (5 * 8 + 8 * 8 + 8), 2 * 3 * (8 * 8 + 8 * 8 + 2 * 8), 8 * (16 + 8 + 1)]
    _check(all(f"{n}" in text for n in counts) and f"Total params: {sum(counts):,}" in text,
           f"parameter counts are Keras's: LSTM {counts[0]}, Bidirectional(GRU) {counts[1]}, "
           f"SimpleRNN {counts[2]}")
    x = np.random.default_rng(seed).random((4, 10, 5)).astype(np.float32)
    y = model.predict(x)
    print(f">>> model.predict(x).shape   # x: {x.shape}")
    print(y.shape)
    _check(y.shape == (4, hidden_units), f"output shape {y.shape} == (4, {hidden_units})")
    w = model.get_weights()
    gru_entry = lambda k, r, b: [k, r, b[0], b[1]]  # noqa: E731 - Keras's GRU bias is (2, 3H)
    want = reference.rnn_stack(x, [[w[0:3]], [gru_entry(*w[3:6]), gru_entry(*w[6:9])], [w[9:12]]],
                               cell=["lstm", "gru", "simple"],
                               direction=["forward", "bidirectional", "forward"],
                               return_sequences=False)
    diff = float(np.max(np.abs(y - want)))
    print(f"  max |model - crnn.reference.rnn_stack| = {diff:.3g}")
    _check(diff <= 1e-5, "LSTM -> Bidirectional(GRU) -> SimpleRNN equals the reference (float32)")


def _median_time(fn: Callable[[], object], repeat: int, budget: float = 0.6) -> float:
    """Median seconds per call over ``repeat`` samples (fewer if over ``budget`` seconds)."""
    fn()  # warm up (builds caches, touches memory)
    number = 1
    while True:  # calls per sample, so one sample lasts >= 0.2 ms
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - t0 >= 2e-4 or number >= 4096:
            break
        number *= 4
    samples = []
    deadline = time.perf_counter() + budget
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
        if len(samples) >= 3 and time.perf_counter() > deadline:
            break
    return statistics.median(samples)


def benchmark(seed: int, repeat: int) -> None:
    """C core (a prebuilt handle, and the layer) vs the NumPy reference, float32, each cell."""
    threads = crnn.get_num_threads() if hasattr(crnn, "get_num_threads") else "?"
    _heading(f"5. Timing, float32, median of up to {repeat} runs, crnn threads = {threads}")
    rng = np.random.default_rng(seed)
    head = (f"{'layer':<10}{'(B, T, D, H)':<20}{'handle.forward':>16}{'layer(x)':>12}"
            f"{'reference':>13}{'speed-up':>10}{'max diff':>11}")
    print(head)
    print("-" * len(head))
    cells = [("SimpleRNN", SimpleRNN, "simple", reference.simple_rnn),
             ("LSTM", LSTM, "lstm", reference.lstm), ("GRU", GRU, "gru", reference.gru)]
    for name, cls, cell, ref_fn in cells:
        for (B, T, D, H) in BENCH_SHAPES if cell == "simple" else BENCH_SHAPES[::2]:
            layer = cls(H, input_dim=D, seed=seed)
            w = layer.get_weights()
            handle = layer._get_handle()
            x = rng.standard_normal((B, T, D)).astype(np.float32)
            t_core = _median_time(lambda: handle.forward(x, return_sequences=False), repeat)
            t_layer = _median_time(lambda: layer(x), repeat)
            t_ref = _median_time(lambda: ref_fn(x, *w), max(3, repeat // 4))
            diff = float(np.max(np.abs(layer(x) - ref_fn(x, *w))))
            if diff > 1e-4:  # float32 over up to 100 steps; a real bug is far larger
                _failures.append(f"{name} differs from the reference by {diff:.3g} at "
                                 f"{(B, T, D, H)}")
            print(f"{name:<10}{str((B, T, D, H)):<20}{t_core * 1e6:>13.1f} µs"
                  f"{t_layer * 1e6:>9.1f} µs{t_ref * 1e6:>10.1f} µs{t_ref / t_core:>9.1f}x"
                  f"{diff:>11.1e}")
    print("speed-up = reference / handle.forward; times are µs per call; "
          "max diff = max |layer(x) - reference|.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m crnn``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["predict"]:  # python -m crnn predict MODEL INPUT OUTPUT (crnn/_dask_cli.py)
        from crnn._dask_cli import main as predict_main
        return predict_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m crnn",
        description="Run the RNN tutorial's Keras and NumPy examples on crnn (SimpleRNN, "
                    "Sequential, summary, the NumPy recurrence, a deep RNN, and the deep model "
                    "with LSTM and GRU layers), checking each "
                    "result against the tutorial and crnn.reference, then print a short timing "
                    "table of the C core against the NumPy reference. Takes well under 20 s.",
        epilog="python -m crnn predict MODEL INPUT OUTPUT scores a .npy file or a Zarr array "
               "with Dask (see python -m crnn predict --help).")
    parser.add_argument("--no-bench", action="store_true", help="skip the timing table")
    parser.add_argument("--repeat", type=int, default=15, metavar="N",
                        help="timing samples per measurement, median reported (default: 15)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of every random input and weight (default: 0)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat: got {args.repeat}, expected a positive int")
    if not 0 <= args.seed <= SEED_MAX:
        parser.error(f"--seed: got {args.seed}, expected an int in [0, {SEED_MAX}]")

    clear_session()  # names start at "sequential" / "simple_rnn", as in the tutorial
    print(f"crnn {getattr(crnn, '__version__', '?')}, numpy {np.__version__}")
    keras_examples(args.seed)
    numpy_walkthrough(args.seed)
    deep_rnn(args.seed)
    gated_rnn(args.seed)
    if not args.no_bench:
        benchmark(args.seed, args.repeat)
    print()
    if _failures:
        print(f"{len(_failures)} check(s) FAILED: " + "; ".join(_failures))
        return 1
    print("All checks passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
