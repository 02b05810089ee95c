"""bench/peers.py --summarize: the README's table of several runs, from their peers.json."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
import peers  # noqa: E402  (bench/ is on sys.path above)


def _report(peak2, rows):
    """A made-up peers.json: rows of (cell, shape, best peer us, crnn 1 thr us, crnn 2 thr us)."""
    results = []
    for cell, shape, peer_us, c1, c2 in rows:
        flops = 2.0 * shape[0] * shape[1] * peers.GATES[cell] * (shape[2] + shape[3]) * shape[3]
        impls = {
            "onednn (2 thr)": {"status": "ok", "median_us": peer_us},
            "crnn (1 thr)": {"status": "ok", "median_us": c1},
            "crnn (2 thr)": {"status": "ok", "median_us": c2,
                             "pct_peak": 100.0 * flops / (c2 * 1e-6) / 1e9 / peak2},
            "crnn default (2 thr)": {"status": "ok", "same_as": "crnn (2 thr)"},
        }
        impls["crnn default (2 thr)"]["pct_peak"] = impls["crnn (2 thr)"]["pct_peak"]
        results.append({"cell": cell, "shape": list(shape), "impls": impls,
                        "best_peer": "onednn (2 thr)", "crnn_default": "crnn default (2 thr)",
                        "speedup": peer_us / c2})
    return {"gemm_peak": {"gflops": {"1": peak2 / 2, "2": peak2}}, "results": results}


def test_one_row_per_shape_with_every_runs_speedup():
    first = _report(300.0, [("simple", (16, 50, 128, 128), 400.0, 350.0, 200.0),
                            ("lstm", (256, 100, 256, 512), 1000.0, 1900.0, 1003.0)])
    second = _report(280.0, [("simple", (16, 50, 128, 128), 380.0, 340.0, 190.0),
                             ("lstm", (256, 100, 256, 512), 990.0, 1800.0, 900.0)])
    lines = peers.summary_table([first, second]).splitlines()
    assert lines[0].startswith("| cell | (B,T,D,H) | best peer | its µs")
    assert "speed-up, run 1 | speed-up, run 2 | % of peak, run 1 | % of peak, run 2" in lines[0]
    simple = next(line for line in lines if line.startswith("| SimpleRNN | (16,50,128,128)"))
    cols = [c.strip() for c in simple.strip("|").split("|")]
    assert cols[2:] == ["onednn (2 thr)", "400.0", "350.0 / 200.0", "2.00×", "2.00×",
                        f"{100 * 52428800 / 200e-6 / 1e9 / 300:.0f} %",
                        f"{100 * 52428800 / 190e-6 / 1e9 / 280:.0f} %"]
    lstm = next(line for line in lines if line.startswith("| LSTM | (256,100,256,512)"))
    # below 1 in bold, with a third digit where two would read 1.00
    assert "| **0.997×** | 1.10× |" in lstm
    assert lines[-1] == "Two-thread sgemm peak of each run: 300, 280 GFLOP/s."  # no paired runs


def test_the_paired_figures_of_each_run_where_it_has_them():
    first = _report(300.0, [("gru", (16, 50, 128, 128), 1000.0, 1100.0, 550.0)])
    second = _report(300.0, [("gru", (16, 50, 128, 128), 1000.0, 1100.0, 600.0)])
    first["results"][0]["paired"] = {"speedup": 1.83, "pct_peak": 93.6}
    second["results"][0]["paired"] = {"speedup": 1.7}  # no peak probed
    lines = peers.summary_table([first, second]).splitlines()
    assert lines[0].endswith("| paired speed-up / % of peak, run 1 "
                             "| paired speed-up / % of peak, run 2 |")
    assert lines[2].endswith("| 1.83× / 94 % | 1.70× |")
    assert lines[-1].startswith("Two-thread sgemm peak of each run: 300, 300 GFLOP/s. Paired:")


def test_a_shape_missing_from_a_later_run_shows_a_dash():
    first = _report(300.0, [("gru", (1, 10, 4, 8), 9.0, 1.2, 1.0)])
    second = _report(300.0, [])
    row = peers.summary_table([first, second]).splitlines()[2]
    assert "| 9.00× | — |" in row


def _summarize(path):
    """bench/peers.py --summarize PATH in a process of its own."""
    return subprocess.run([sys.executable, os.path.join(REPO, "bench", "peers.py"), "--summarize",
                           str(path)], capture_output=True, text=True, timeout=120)


def test_summarize_prints_the_table_and_runs_nothing(tmp_path):
    path = tmp_path / "peers.json"
    path.write_text(json.dumps(_report(300.0, [("gru", (8, 2, 10, 3), 7.0, 0.8, 0.7)])))
    out = _summarize(path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].endswith("| speed-up | % of peak |")
    assert "| GRU | (8,2,10,3) | onednn (2 thr) | 7.00 | 0.80 / 0.70 | 10.00× |" in out.stdout


def test_summarize_refuses_a_file_that_is_not_a_run(tmp_path):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"results": []}))
    for path, what in ((bad, "is not a peers.json"), (tmp_path / "missing.json", "cannot read")):
        out = _summarize(path)
        assert out.returncode == 2 and what in out.stderr, out.stderr


def _impl(name, rounds_samples):
    """An Impl whose samples (ns) came in the rounds given: {round: [ns, ...]}."""
    imp = peers.Impl(name, "test", 2, run=lambda: None)
    for rnd, samples in rounds_samples.items():
        imp.samples += samples
        imp.sample_rounds += [rnd] * len(samples)
    return imp


def test_paired_takes_each_rounds_fastest_peer_and_its_peak():
    # crnn's rounds: 100, 300 (a slow spell), 110 ns; the peers slowed alike in round 1
    impls = {"crnn": _impl("crnn", {0: [100, 90, 110], 1: [300], 2: [110]}),
             "a": _impl("a", {0: [250], 1: [600], 2: [230]}),
             "b": _impl("b", {0: [200, 220], 2: [250]})}  # b missed round 1
    flops = 30_000.0  # 300 GFLOP/s at 100 ns
    got = peers.paired(impls, "crnn", ["a", "b"], [600.0, 200.0, None], flops)
    # ratios: round 0 min(250, 210) / 100 = 2.1, round 1 600 / 300 = 2.0, round 2 230 / 110 =
    # 2.09: the median is round 2's
    assert got["speedup"] == pytest.approx(230 / 110)
    assert got["speedup_rounds"] == 3 and got["speedup_above_1"] == 1.0
    # shares of the round's peak: 300 / 600 = 50 %, 100 / 200 = 50 %; round 2 had no probe
    assert got["pct_peak"] == pytest.approx(50.0) and got["pct_peak_rounds"] == 2
    assert peers.paired({**impls, "crnn": _impl("crnn", {})}, "crnn", ["a"], [], flops) is None
    alone = peers.paired(impls, "crnn", [], [], flops)
    assert alone == {"rounds": 3}


def test_time_interleaved_tags_every_sample_with_its_round_and_probes_each_round():
    calls = []

    def chunk(k, warm):
        calls.append(k)
        return [1000] * k

    imps = [peers.Impl(n, "test", 1, run=lambda: None, chunk=chunk) for n in ("x", "y")]
    for imp in imps:
        imp.est_ns = 1000
    probes = iter([300.0, 310.0, None, 290.0])
    got = peers.time_interleaved(imps, repeats=8, budget_s=1.0, rounds=4,
                                 probe=lambda: next(probes))
    assert got == [300.0, 310.0, None, 290.0]
    assert calls == [2] * 8  # each implementation's 8 samples spread over the 4 rounds
    for imp in imps:
        assert len(imp.samples) == 8 and imp.sample_rounds == [0, 0, 1, 1, 2, 2, 3, 3]
