"""Seeded random stacks and models against crnn.reference at 1-4 threads (see differential.py).

The suite runs a bounded sample (a fixed seed, so a failure reproduces: the message names the
case seed, and ``python tests/differential.py --seed <master seed> --cases N`` replays it);
``python tests/differential.py --cases 2000`` runs many more before a release.
"""
import pytest

import crnn

import differential

#: Cases per (kind, target mode); each runs at 4 thread counts, twice each.
CASES_PER_MODE = 12


@pytest.fixture(autouse=True)
def restore_threads():
    before = crnn.get_num_threads()
    yield
    crnn.set_num_threads(before)


@pytest.mark.parametrize("kind", ["stack", "model"])
@pytest.mark.parametrize("mode", differential.MODES)
def test_random_cases_match_reference(kind, mode):
    seen = {m: 0 for m in differential.MODES}
    for i in range(CASES_PER_MODE):
        seed = 20261201 + 7919 * i + 104729 * differential.MODES.index(mode)
        planned = differential.run_one(seed, kind, mode)
        for m in planned.values():
            seen[m] += 1
    # The target mode really ran (at 2 threads and up), and 1 thread is always serial.
    assert seen[mode] >= CASES_PER_MODE, seen
