"""crnn: fast CPU inference for recurrent neural networks (SimpleRNN, LSTM, GRU).

A BLAS-backed C core (``csrc/``, public header ``crnn.h``) wrapped thinly in Cython, with a
Keras-like Python API::

    import crnn
    model = crnn.Sequential()
    model.add(crnn.SimpleRNN(3, input_shape=(2, 10)))
    model.summary()
    y = model.predict(x)

``crnn.reference`` holds the plain NumPy implementation every result is checked against.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.machinery
import importlib.util
import os
import sys
from typing import Optional


def _installed_copy() -> Optional[str]:
    """The directory of an installed crnn, when this one is a source checkout with no core built.

    ``pip install . && python -m crnn`` typed in the checkout: Python puts the current directory
    first on ``sys.path``, so this directory shadows the installed package, whose compiled core
    went to site-packages. The package then takes every submodule from the installed copy (see
    below). A core built here (editable install, ``build_ext --inplace``) changes nothing.
    """
    here = os.path.dirname(os.path.abspath(__file__))

    def has_core(d: str) -> bool:
        return any(os.path.isfile(os.path.join(d, "_core" + suffix))
                   for suffix in importlib.machinery.EXTENSION_SUFFIXES)

    if has_core(here):
        return None
    for entry in sys.path:
        candidate = os.path.join(os.path.abspath(entry or os.curdir), "crnn")
        if os.path.abspath(candidate) != here and has_core(candidate) \
                and os.path.isfile(os.path.join(candidate, "__init__.py")):
            return candidate
    return None


_other = _installed_copy()
if _other is not None:
    __path__[:] = [_other]  # noqa: F821 - crnn.<anything> now resolves there


def _preload_blas() -> None:
    """Load scipy-openblas32's shared library privately (RTLD_LOCAL) before the extension.

    The extension records the library as needed with an $ORIGIN-relative rpath; loading it here
    by absolute path as well makes the import work wherever the two packages were installed
    (editable installs, relocated wheels). ``scipy_openblas32`` itself is never imported: that
    would load the library globally, where its unprefixed LAPACK internals could shadow NumPy's.
    """
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return  # the rpath may still find it; otherwise the import below says what is missing
    for root in spec.submodule_search_locations:
        for path in sorted(glob.glob(os.path.join(root, "lib", "libscipy_openblas*.so*"))):
            ctypes.CDLL(path, mode=os.RTLD_LOCAL)
            return


_preload_blas()

from crnn import reference  # noqa: E402
from crnn._version import __version__  # noqa: E402
from crnn import _core  # noqa: E402
from crnn.functional import gru, lstm, rnn_stack, simple_rnn, simple_rnn_stack  # noqa: E402
from crnn.threads import get_num_threads, set_num_threads  # noqa: E402
from crnn.layers import (GRU, LSTM, Activation, Bidirectional, Dense, Dropout,  # noqa: E402
                         Embedding, Input, InputLayer, Masking, SimpleRNN)
from crnn.models import Sequential  # noqa: E402
from crnn.saving import load_model, save_model  # noqa: E402
from crnn._include import get_include  # noqa: E402
# Interop entry points: each imports torch / h5py / keras only when called.
from crnn.interop import from_keras, from_torch, load_keras, load_onnx, to_onnx  # noqa: E402

__all__ = [
    "__version__",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
    "Dense",
    "Embedding",
    "Masking",
    "Activation",
    "Dropout",
    "Input",
    "InputLayer",
    "Sequential",
    "load_model",
    "save_model",
    "simple_rnn",
    "simple_rnn_stack",
    "lstm",
    "gru",
    "rnn_stack",
    "reference",
    "set_num_threads",
    "get_num_threads",
    "get_include",
    "from_torch",
    "from_keras",
    "load_keras",
    "load_onnx",
    "to_onnx",
]
