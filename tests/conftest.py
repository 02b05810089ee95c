"""pytest configuration for the crnn suite.

Helpers live in ``_helpers.py`` beside this file; the directory is put on
``sys.path`` here so ``import _helpers`` works under any ``--import-mode``.
"""
import os
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def rng(request):
    """A Generator seeded from the test's node id: reproducible, different per test item."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
