"""Embedding crnn's C core in other extensions, against the *installed* crnn.

During the test run this module compiles

* examples/c_extension/crnn_embed_demo.c, a C extension that includes only crnn_capi.h (found
  through ``crnn.get_include()``) and calls ``import_crnn()``: it links nothing of crnn's and no
  BLAS, and calls the core on NumPy buffers with the GIL released: SimpleRNN stacks through 0.1's
  functions, stacks of any cells (LSTM, GRU, mixed) through crnn_rnn_create2 / forward2, and
  streaming loops in C that feed one timestep per call with h (and an LSTM's c) carried from call
  to call;
* examples/cython_extension/crnn_embed_cy.pyx, a Cython extension that cimports the declarations
  shipped in the package (``from crnn.crnn cimport ...``, crnn/crnn.pxd) and reaches the core
  through the same capsule: a SimpleRNN layer and a layer of any cell;

and checks both against ``crnn.reference`` (``simple_rnn_stack``, ``rnn_stack``, ``lstm``,
``gru``). The compiler is called directly with the flags of
``sysconfig`` (no setuptools needed); the examples' own setup.py files are built as well when
setuptools is available. Everything is built in a temporary directory.

Tolerances: as in test_core.py (``_helpers.derived_tol``): the extensions run crnn's own core, so
the same derivation applies; the reference runs in float64 on the same (upcast) inputs. The gated
cells' weights keep every gate's recurrent block at spectral norm ``RHO`` and their gates in
[0, 1] (sigmoid, hard_sigmoid), so the states stay O(1) and errors contract as for SimpleRNN.
"""
import ctypes
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

import crnn
from crnn import reference

from _helpers import (GAIN, assert_close, derived_tol, make_stack_weights, recurrent_matrix,
                      scaled, stack_k, to64, value_scale)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO_ROOT, "examples")
C_EXAMPLE = os.path.join(EXAMPLES, "c_extension")
CY_EXAMPLE = os.path.join(EXAMPLES, "cython_extension")

ACT = {"tanh": 0, "relu": 1, "sigmoid": 2, "linear": 3, "hard_sigmoid": 4}
DIR = {"forward": 0, "reverse": 1, "bidirectional": 2}
CELL = {"simple": 0, "lstm": 1, "gru": 2}
GATES = {"simple": 1, "lstm": 4, "gru": 3}


def _ldshared():
    """The command that builds an extension module, as this Python was built with."""
    ld = sysconfig.get_config_var("LDSHARED")
    if not ld:
        return None
    cmd = shlex.split(ld)
    cc = os.environ.get("CC")
    if cc:  # honour CC like setuptools does
        cmd = shlex.split(cc) + cmd[1:]
    return cmd if shutil.which(cmd[0]) else None


pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="the example builds use a POSIX compiler"),
    pytest.mark.skipif(_ldshared() is None, reason="no C compiler (sysconfig LDSHARED) on PATH"),
    pytest.mark.skipif(not os.path.isdir(EXAMPLES), reason="examples/ not present"),
]


def _crnn_parent():
    """The directory above the crnn package: Cython's include path for `cimport crnn.crnn`."""
    return os.path.dirname(os.path.dirname(os.path.abspath(crnn.__file__)))


def _child_env(*paths):
    """Environment for child processes: they import the same crnn as this process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*paths, _crnn_parent()] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _run(cmd, cwd, what, env=None, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, (f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                                  f"--- stdout ---\n{proc.stdout[-4000:]}\n"
                                  f"--- stderr ---\n{proc.stderr[-4000:]}")
    return proc


def _compile_extension(c_source, out_dir, name, opt="-O2"):
    """Compile one C file into an extension module with nothing but the Python and crnn
    headers: no -l flags, no crnn library, no BLAS."""
    out = os.path.join(out_dir, name + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = (_ldshared() + shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC") +
           [opt, "-Wall", "-Werror=implicit-function-declaration",
            "-I" + sysconfig.get_paths()["include"], "-I" + crnn.get_include(),
            c_source, "-o", out])
    _run(cmd, out_dir, f"compiling {name}")
    return out


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _undefined_crnn_symbols(path):
    nm = shutil.which("nm")
    if nm is None:
        return None
    out = subprocess.run([nm, "-D", "--undefined-only", path], capture_output=True,
                         text=True).stdout
    return [line.split()[-1] for line in out.splitlines()
            if line.split() and re.match(r"_?crnn_", line.split()[-1])]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("crnn-embed"))


@pytest.fixture(scope="module")
def c_ext_path(build_dir):
    return _compile_extension(os.path.join(C_EXAMPLE, "crnn_embed_demo.c"), build_dir,
                              "crnn_embed_demo")


@pytest.fixture(scope="module")
def demo(c_ext_path):
    return _load(c_ext_path, "crnn_embed_demo")


@pytest.fixture(scope="module")
def cy_ext_path(build_dir):
    pytest.importorskip("Cython", reason="Cython is needed to build the Cython example "
                                         "(pip install cython)")
    src = os.path.join(build_dir, "crnn_embed_cy.pyx")
    shutil.copy(os.path.join(CY_EXAMPLE, "crnn_embed_cy.pyx"), src)
    c_file = os.path.join(build_dir, "crnn_embed_cy.c")
    # -I: where `from crnn.crnn cimport ...` finds crnn/crnn.pxd of the installed package.
    _run([sys.executable, "-m", "cython", "-3", "-I", _crnn_parent(), src, "-o", c_file],
         build_dir, "cythonizing crnn_embed_cy.pyx")
    # -O0: Cython's large generated file compiles in a fraction of the -O2 time; the numbers
    # come from crnn's core, which is optimised in crnn._core.
    return _compile_extension(c_file, build_dir, "crnn_embed_cy", opt="-O0")


@pytest.fixture(scope="module")
def cy(cy_ext_path):
    return _load(cy_ext_path, "crnn_embed_cy")


# --------------------------------------------------------------------------------------------
# get_include() and the capsule


def test_get_include_has_the_headers_and_the_pxd_is_reachable():
    inc = crnn.get_include()
    assert os.path.isabs(inc)
    for name in ("crnn.h", "crnn_capi.h"):
        assert os.path.isfile(os.path.join(inc, name)), f"{name} missing from {inc}"
    with open(os.path.join(inc, "crnn.h")) as f:
        assert "Python.h" not in re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S), \
            "crnn.h must not include Python.h"
    # Cython's include path: the directory above the package holds crnn/crnn.pxd.
    assert os.path.isfile(os.path.join(_crnn_parent(), "crnn", "crnn.pxd"))


def test_capsule_table_header():
    """crnn._core._C_API is a capsule of that name whose table starts with the version and size
    that crnn_capi.h checks."""
    cap = crnn._core._C_API
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    assert api.PyCapsule_GetName(cap) == b"crnn._core._C_API"
    ptr = api.PyCapsule_GetPointer(cap, b"crnn._core._C_API")
    assert ptr

    class Head(ctypes.Structure):
        _fields_ = [("api_version", ctypes.c_uint), ("struct_size", ctypes.c_size_t),
                    ("version", ctypes.c_void_p)]

    head = Head.from_address(ptr)
    assert head.api_version == crnn._core.C_API_VERSION >= 1
    # version 1: two header fields and 11 function pointers
    assert head.struct_size >= ctypes.sizeof(Head) + 10 * ctypes.sizeof(ctypes.c_void_p)
    version = ctypes.CFUNCTYPE(ctypes.c_uint)(head.version)
    major, minor, patch = crnn._core.version()
    assert version() == major * 10000 + minor * 100 + patch


# --------------------------------------------------------------------------------------------
# The C extension


def test_c_extension_links_nothing_of_crnn(c_ext_path):
    undefined = _undefined_crnn_symbols(c_ext_path)
    if undefined is None:
        pytest.skip("no `nm` on PATH")
    assert undefined == [], f"the extension needs crnn symbols from a library: {undefined}"


def test_c_extension_reaches_the_installed_core(demo):
    major, minor, patch = crnn._core.version()
    assert demo.core_version() == major * 10000 + minor * 100 + patch
    assert demo.CAPI_VERSION == crnn._core.C_API_VERSION
    assert demo.status_string(0) == "ok"
    assert demo.status_string(12345) == "unknown status"


def test_c_extension_imports_crnn_by_itself(c_ext_path):
    """A fresh interpreter that imports only the extension: import_crnn() imports crnn (which
    loads its private BLAS) and the core runs."""
    code = (
        "import sys, numpy as np\n"
        "import crnn_embed_demo as d\n"
        "assert 'crnn._core' in sys.modules\n"
        "x = np.ones((2, 3, 4), np.float32)\n"
        "k = np.full((4, 5), 0.1, np.float32); r = np.eye(5, dtype=np.float32) * 0.5\n"
        "y = np.empty((2, 3, 5), np.float32)\n"
        "d.forward(x, [(0, 0, [(k, r, None)])], y)\n"
        "assert np.isfinite(y).all() and abs(y[0, 0, 0] - np.tanh(0.4)) < 1e-6\n"
        "print('ok')\n")
    proc = _run([sys.executable, "-c", code], os.path.dirname(c_ext_path),
                "importing the C extension in a fresh interpreter",
                env=_child_env(os.path.dirname(c_ext_path)))
    assert proc.stdout.strip() == "ok"


def test_import_crnn_rejects_a_bad_table(c_ext_path):
    """import_crnn() checks the capsule before using it: wrong name, a table older than the
    header, a core of another major version all give ImportError; the real one then works."""
    code = r"""
import ctypes
import crnn._core as core
api = ctypes.pythonapi
api.PyCapsule_New.restype = ctypes.py_object
api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

class Table(ctypes.Structure):
    _fields_ = ([("api_version", ctypes.c_uint), ("struct_size", ctypes.c_size_t)] +
                [("f%d" % i, ctypes.c_void_p) for i in range(16)])

real = core._C_API
name = ctypes.c_char_p(b"crnn._core._C_API")
version = ctypes.CFUNCTYPE(ctypes.c_uint)(lambda: 990000)  # "crnn 99.0.0"

def attempt(label, capsule):
    core._C_API = capsule
    try:
        import crnn_embed_demo
    except ImportError as err:
        print(label, "ImportError", err)
    else:
        print(label, "imported")

attempt("wrong-name", api.PyCapsule_New(ctypes.addressof(Table()), b"other.name", None))
old = Table(0, ctypes.sizeof(Table))
attempt("old-table", api.PyCapsule_New(ctypes.addressof(old), name, None))
major = Table(999, ctypes.sizeof(Table), ctypes.cast(version, ctypes.c_void_p))
attempt("other-major", api.PyCapsule_New(ctypes.addressof(major), name, None))
attempt("real", real)
"""
    proc = _run([sys.executable, "-c", code], os.path.dirname(c_ext_path),
                "import_crnn() against bad tables", env=_child_env(os.path.dirname(c_ext_path)))
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["wrong-name"].startswith("ImportError"), lines
    assert lines["old-table"].startswith("ImportError") and "upgrade crnn" in lines["old-table"]
    assert lines["other-major"].startswith("ImportError") and "99.0.0" in lines["other-major"]
    assert lines["real"] == "imported", lines


def _stack_case(rng, dtype, B, T, D, units, direction, activations, bias=True):
    ndir = 2 if direction == "bidirectional" else 1
    w = make_stack_weights(rng, D, units, ndir, dtype, bias=bias)
    # tanh/sigmoid layers get an exact x4 gain so they run into saturation (as test_core.py)
    w = [scaled([layer], 4.0)[0] if a in ("tanh", "sigmoid") else layer
         for layer, a in zip(w, activations)]
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    layers = [(ACT[a], DIR[direction], [tuple(e) for e in layer])
              for layer, a in zip(w, activations)]
    return x, w, layers, ndir


def _outputs(B, T, units, ndir, dtype):
    y = np.full((B, T, units[-1] * ndir), np.nan, dtype)
    hn = [np.full((B, u), np.nan, dtype) for u in units for _ in range(ndir)]
    return y, hn


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("units", [(7,), (33, 5)], ids=["1layer", "2layers"])
@pytest.mark.parametrize("state", ["none", "h0+lengths"])
def test_c_extension_forward_matches_reference(demo, rng, dtype, direction, units, state):
    B, T, D = 3, 6, 4
    activations = ["tanh", "relu"][:len(units)]
    x, w, layers, ndir = _stack_case(rng, dtype, B, T, D, list(units), direction, activations)
    h0 = lengths = None
    if state != "none":
        h0 = [rng.uniform(-1, 1, (B, u)).astype(dtype) for u in units for _ in range(ndir)]
        lengths = np.array([T, 0, 4], dtype=np.int64)
    y, hn = _outputs(B, T, units, ndir, dtype)
    demo.forward(x, layers, y, hn, h0, lengths)
    ref_y, ref_states = reference.simple_rnn_stack(
        to64(x), to64(w), activation=activations, direction=direction, initial_state=to64(h0),
        lengths=lengths, return_sequences=True, return_state=True)
    tol = derived_tol(dtype, stack_k(D, units, ndir), T * len(units))
    assert_close(y, ref_y, tol, "y", dtype=dtype)
    for e, (got, exp) in enumerate(zip(hn, ref_states)):
        assert_close(got, exp, tol, f"h_n[{e}]", dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("units", [(8,), (40, 6)], ids=["1layer", "2layers"])
@pytest.mark.parametrize("with_h0", [False, True], ids=["h0=zeros", "h0"])
def test_c_extension_streaming_equals_whole_sequence(demo, rng, dtype, units, with_h0):
    """A C loop feeding one timestep per crnn_rnn_forward() call, h_n of step t passed as h0 of
    step t + 1, gives what one call over the whole sequence gives (and the reference)."""
    B, T, D = 4, 9, 5
    activations = ["tanh", "sigmoid"][:len(units)]
    x, w, layers, _ = _stack_case(rng, dtype, B, T, D, list(units), "forward", activations)
    h0 = [rng.uniform(-1, 1, (B, u)).astype(dtype) for u in units] if with_h0 else None
    y_whole, hn_whole = _outputs(B, T, units, 1, dtype)
    demo.forward(x, layers, y_whole, hn_whole, h0)
    y_stream, hn_stream = _outputs(B, T, units, 1, dtype)
    demo.stream(x, layers, y_stream, hn_stream, h0)
    ref_y, ref_states = reference.simple_rnn_stack(
        to64(x), to64(w), activation=activations, initial_state=to64(h0),
        return_sequences=True, return_state=True)
    tol = derived_tol(dtype, stack_k(D, units, 1), T * len(units))
    assert_close(y_stream, y_whole, tol, "stream vs whole y", dtype=dtype)
    assert_close(y_stream, ref_y, tol, "stream vs reference y", dtype=dtype)
    for e in range(len(units)):
        assert_close(hn_stream[e], hn_whole[e], tol, f"stream vs whole h_n[{e}]")
        assert_close(hn_stream[e], ref_states[e], tol, f"stream vs reference h_n[{e}]")
    # The stream can also be resumed across calls: two chunks, the state handed over.
    y_a, hn_a = _outputs(B, 4, units, 1, dtype)
    demo.stream(np.ascontiguousarray(x[:, :4]), layers, y_a, hn_a, h0)
    y_b, hn_b = _outputs(B, T - 4, units, 1, dtype)
    demo.stream(np.ascontiguousarray(x[:, 4:]), layers, y_b, hn_b, hn_a)
    assert_close(np.concatenate([y_a, y_b], axis=1), ref_y, tol, "two chunks vs reference")
    for e in range(len(units)):
        assert_close(hn_b[e], ref_states[e], tol, f"two chunks h_n[{e}]")


def test_c_extension_errors_come_from_the_core(demo):
    x = np.zeros((2, 3, 4), np.float32)
    k, r = np.zeros((4, 5), np.float32), np.zeros((5, 5), np.float32)
    y = np.empty((2, 3, 5), np.float32)
    # an activation the core does not know: crnn_rnn_create's status, through the capsule
    with pytest.raises(ValueError, match=r"invalid argument.*status -2"):
        demo.forward(x, [(9, 0, [(k, r, None)])], y)
    with pytest.raises(ValueError, match=r"invalid argument"):
        demo.forward(x, [(0, 0, [(k, r, None)])], y, None, None, np.array([0, 4], np.int64))
    with pytest.raises(ValueError, match="stream: every layer must run forward"):
        demo.stream(x, [(0, 1, [(k, r, None)])], y)
    with pytest.raises(TypeError, match="format"):  # float64 weights for float32 x
        demo.forward(x, [(0, 0, [(k.astype(np.float64), r, None)])], y)


# --------------------------------------------------------------------------------------------
# The C extension: any cells (crnn_rnn_create2 / crnn_rnn_forward2 through the capsule)

#: Layer stacks: (cell, units, activation, recurrent_activation, reset_after) per layer.
CELL_STACKS = {
    "lstm": [("lstm", 7, "tanh", "sigmoid", False)],
    "gru": [("gru", 7, "tanh", "sigmoid", True)],
    "gru_reset_before": [("gru", 7, "tanh", "hard_sigmoid", False)],
    "lstm>gru>simple": [("lstm", 9, "tanh", "hard_sigmoid", False),
                        ("gru", 6, "relu", "sigmoid", True),
                        ("simple", 5, "tanh", "sigmoid", False)],
}


def _cell_weights(rng, input_dim, cell, units, activation, dtype, bias=True):
    """[kernel (D, G*H), recurrent_kernel (H, G*H), bias, recurrent_bias] of one direction, Keras
    gate order: each gate's recurrent block has spectral norm RHO; kernel and biases as
    make_layer_weights draws them, x4 (exact) into saturation for a tanh / sigmoid layer."""
    G = GATES[cell]
    s = GAIN / np.sqrt(input_dim + units) * (4.0 if activation in ("tanh", "sigmoid") else 1.0)
    k = rng.uniform(-s, s, (input_dim, G * units)).astype(dtype)
    r = np.concatenate([recurrent_matrix(rng, units) for _ in range(G)], axis=1).astype(dtype)
    b, rb = ((rng.uniform(-s, s, G * units).astype(dtype) for _ in range(2)) if bias
             else (None, None))
    return [k, r, b, rb]


def _cells_case(rng, dtype, B, T, D, stack, direction, bias=True):
    """x, the weights (layers x directions x [k, r, b, rb]) and forward2's `layers` argument."""
    ndir = 2 if direction == "bidirectional" else 1
    weights, layers, d = [], [], D
    for cell, units, act, ract, reset_after in stack:
        layer = [_cell_weights(rng, d, cell, units, act, dtype, bias) for _ in range(ndir)]
        weights.append(layer)
        layers.append((CELL[cell], ACT[act], ACT[ract], DIR[direction], int(reset_after),
                       [tuple(w) for w in layer]))
        d = units * ndir
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    return x, weights, layers, ndir


def _reference_stack(x, weights, stack, direction, initial_state=None, lengths=None):
    cells, _, acts, racts, resets = zip(*stack)
    return reference.rnn_stack(
        to64(x), to64(weights), cell=list(cells), activation=list(acts),
        recurrent_activation=list(racts), reset_after=list(resets), direction=direction,
        initial_state=initial_state, lengths=lengths, return_sequences=True, return_state=True)


def _state_outputs(B, stack, ndir, dtype):
    """h_n and c_n buffers (NaN-filled) per (layer, direction); c_n only for LSTM layers."""
    entries = [(cell, units) for cell, units, *_ in stack for _ in range(ndir)]
    hn = [np.full((B, u), np.nan, dtype) for _, u in entries]
    cn = [np.full((B, u), np.nan, dtype) if cell == "lstm" else None for cell, u in entries]
    return hn, cn


def _initial_states(rng, B, stack, ndir, dtype):
    """h0, c0 for forward2 and the reference's initial_state ([h, c] for LSTM layers)."""
    h0, c0, ref = [], [], []
    for cell, units, *_ in stack:
        for _ in range(ndir):
            h = rng.uniform(-1, 1, (B, units)).astype(dtype)
            c = rng.uniform(-1, 1, (B, units)).astype(dtype) if cell == "lstm" else None
            h0.append(h)
            c0.append(c)
            ref.append([to64(h), to64(c)] if cell == "lstm" else to64(h))
    return h0, c0, ref


def _assert_states(hn, cn, ref_states, tol, dtype, what):
    for e, exp in enumerate(ref_states):
        exp_h, exp_c = exp if isinstance(exp, list) else (exp, None)
        assert_close(hn[e], exp_h, tol, f"{what} h_n[{e}]", dtype=dtype)
        if exp_c is not None:
            assert_close(cn[e], exp_c, tol, f"{what} c_n[{e}]", dtype=dtype)
        else:
            assert cn[e] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("stack", list(CELL_STACKS))
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("state", ["none", "h0+c0+lengths"])
def test_c_extension_forward2_matches_reference(demo, rng, dtype, stack, direction, state):
    B, T, D = 3, 6, 4
    layers_spec = CELL_STACKS[stack]
    x, w, layers, ndir = _cells_case(rng, dtype, B, T, D, layers_spec, direction)
    h0 = c0 = ref_init = lengths = None
    if state != "none":
        h0, c0, ref_init = _initial_states(rng, B, layers_spec, ndir, dtype)
        lengths = np.array([T, 0, 4], dtype=np.int64)
    units = [u for _, u, *_ in layers_spec]
    y = np.full((B, T, units[-1] * ndir), np.nan, dtype)
    hn, cn = _state_outputs(B, layers_spec, ndir, dtype)
    demo.forward2(x, layers, y, hn, cn, h0, c0, lengths)
    ref_y, ref_states = _reference_stack(x, w, layers_spec, direction, ref_init, lengths)
    tol = derived_tol(dtype, stack_k(D, units, ndir), T * len(units),
                      value_scale(ref_y, *ref_states))
    assert_close(y, ref_y, tol, "y", dtype=dtype)
    _assert_states(hn, cn, ref_states, tol, dtype, "forward2")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "h0+c0"])
def test_c_extension_stream2_carries_h_and_c(demo, rng, dtype, with_state):
    """A C loop feeding one timestep per crnn_rnn_forward2() call, every layer's h_n and c_n of
    step t passed as h0 and c0 of step t + 1, gives what one call over the whole sequence gives
    (and the reference); so does a stream resumed from the states of a first chunk."""
    B, T, D = 4, 9, 5
    stack = [("lstm", 8, "tanh", "sigmoid", False), ("gru", 6, "tanh", "sigmoid", True),
             ("lstm", 5, "tanh", "hard_sigmoid", False)]
    x, w, layers, _ = _cells_case(rng, dtype, B, T, D, stack, "forward")
    h0, c0, ref_init = (_initial_states(rng, B, stack, 1, dtype) if with_state
                        else (None, None, None))
    units = [u for _, u, *_ in stack]
    ref_y, ref_states = _reference_stack(x, w, stack, "forward", ref_init)
    tol = derived_tol(dtype, stack_k(D, units, 1), T * len(units), value_scale(ref_y, *ref_states))
    y_whole = np.full((B, T, units[-1]), np.nan, dtype)
    hn_whole, cn_whole = _state_outputs(B, stack, 1, dtype)
    demo.forward2(x, layers, y_whole, hn_whole, cn_whole, h0, c0)
    y_stream = np.full((B, T, units[-1]), np.nan, dtype)
    hn_stream, cn_stream = _state_outputs(B, stack, 1, dtype)
    demo.stream2(x, layers, y_stream, hn_stream, cn_stream, h0, c0)
    assert_close(y_stream, y_whole, tol, "stream vs whole y", dtype=dtype)
    assert_close(y_stream, ref_y, tol, "stream vs reference y", dtype=dtype)
    _assert_states(hn_whole, cn_whole, ref_states, tol, dtype, "whole")
    _assert_states(hn_stream, cn_stream, ref_states, tol, dtype, "stream")
    # two chunks, the first one's h_n and c_n handed over as the second one's h0 and c0
    y_a = np.full((B, 4, units[-1]), np.nan, dtype)
    hn_a, cn_a = _state_outputs(B, stack, 1, dtype)
    demo.stream2(np.ascontiguousarray(x[:, :4]), layers, y_a, hn_a, cn_a, h0, c0)
    y_b = np.full((B, T - 4, units[-1]), np.nan, dtype)
    hn_b, cn_b = _state_outputs(B, stack, 1, dtype)
    demo.stream2(np.ascontiguousarray(x[:, 4:]), layers, y_b, hn_b, cn_b, hn_a, cn_a)
    assert_close(np.concatenate([y_a, y_b], axis=1), ref_y, tol, "two chunks y", dtype=dtype)
    _assert_states(hn_b, cn_b, ref_states, tol, dtype, "two chunks")


def test_c_extension_forward2_errors(demo):
    B, T, D, H = 2, 3, 4, 5
    x = np.zeros((B, T, D), np.float32)
    k, r = np.zeros((D, 3 * H), np.float32), np.zeros((H, 3 * H), np.float32)
    y = np.empty((B, T, H), np.float32)

    def gru(cell=CELL["gru"], ract=ACT["sigmoid"], reset_after=1, direction=0, kernel=k):
        return [(cell, ACT["tanh"], ract, direction, reset_after, [(kernel, r, None, None)])]

    demo.forward2(x, gru(), y)  # valid
    # the core's statuses, through the capsule: reset_after not 0/1, an unknown recurrent
    # activation, an unknown cell (its weights parsed as one gate: G*H = H columns)
    with pytest.raises(ValueError, match=r"invalid argument.*status -2"):
        demo.forward2(x, gru(reset_after=2), y)
    with pytest.raises(ValueError, match=r"invalid argument.*status -2"):
        demo.forward2(x, gru(ract=7), y)
    with pytest.raises(ValueError, match=r"invalid argument.*status -2"):
        demo.forward2(x, [(5, 0, 0, 0, 0, [(np.zeros((D, H), np.float32),
                                            np.zeros((H, H), np.float32), None, None)])], y)
    # shapes are the extension's to check
    with pytest.raises(ValueError, match=r"recurrent_kernel of shape \(5, 15\).*4 \* units"):
        demo.forward2(x, gru(cell=CELL["lstm"]), y)
    with pytest.raises(ValueError, match=r"kernel: got size 14 in dimension 1, expected 15"):
        demo.forward2(x, gru(kernel=np.zeros((D, 14), np.float32)), y)
    with pytest.raises(ValueError, match="c0: expected a list of 1 arrays"):
        demo.forward2(x, gru(), y, None, None, None, [])
    with pytest.raises(ValueError, match="stream2: every layer must run forward"):
        demo.stream2(x, gru(direction=1), y)


# --------------------------------------------------------------------------------------------
# The Cython extension


def test_cython_extension_links_nothing_of_crnn(cy_ext_path):
    undefined = _undefined_crnn_symbols(cy_ext_path)
    if undefined is None:
        pytest.skip("no `nm` on PATH")
    assert undefined == [], f"the extension needs crnn symbols from a library: {undefined}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("activation", ["tanh", "linear"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_cython_extension_matches_reference(cy, rng, dtype, direction, activation, bias):
    B, T, D, H = 3, 7, 6, 17
    x, w, _, _ = _stack_case(rng, dtype, B, T, D, [H], direction, [activation], bias=bias)
    k, r, b = w[0][0]
    y, hn = cy.forward(x, k, r, b, ACT[activation], DIR[direction])
    ref_y, ref_states = reference.simple_rnn_stack(
        to64(x), to64(w), activation=activation, direction=direction,
        return_sequences=True, return_state=True)
    tol = derived_tol(dtype, D + H, T)
    assert_close(y, ref_y, tol, "y", dtype=dtype)
    assert_close(hn, ref_states[0], tol, "h_n", dtype=dtype)
    major, minor, patch = crnn._core.version()
    assert cy.core_version() == major * 10000 + minor * 100 + patch


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell, reset_after", [("lstm", False), ("gru", True), ("gru", False)],
                         ids=["lstm", "gru", "gru_reset_before"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("ract", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros+nobias", "h0+c0+biases"])
def test_cython_cell_forward_matches_reference(cy, rng, dtype, cell, reset_after, direction,
                                               ract, with_state):
    B, T, D, H = 3, 7, 6, 17
    k, r, b, rb = _cell_weights(rng, D, cell, H, "tanh", dtype, bias=with_state)
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype) if with_state else None
    c0 = rng.uniform(-1, 1, (B, H)).astype(dtype) if with_state and cell == "lstm" else None
    y, hn, cn = cy.cell_forward(x, k, r, b, rb, CELL[cell], ACT["tanh"], ACT[ract],
                                DIR[direction], int(reset_after), h0, c0)
    kw = dict(recurrent_activation=ract, go_backwards=direction == "reverse",
              return_sequences=True, return_state=True)
    if cell == "lstm":
        # Keras's LSTM has one bias: the two add (crnn.h)
        ref_y, ref_h, ref_c = reference.lstm(
            to64(x), to64(k), to64(r), None if b is None else to64(b) + to64(rb),
            None if h0 is None else [to64(h0), to64(c0)], **kw)
    else:
        ref_y, ref_h = reference.gru(to64(x), to64(k), to64(r),
                                     None if b is None else np.stack([to64(b), to64(rb)]),
                                     to64(h0), reset_after=reset_after, **kw)
        ref_c = None
    if direction == "reverse":  # go_backwards returns processing order; crnn keeps time order
        ref_y = ref_y[:, ::-1]
    tol = derived_tol(dtype, D + H, T, value_scale(ref_y, ref_h, ref_c))
    assert_close(y, ref_y, tol, "y", dtype=dtype)
    assert_close(hn, ref_h, tol, "h_n", dtype=dtype)
    if cell == "lstm":
        assert_close(cn, ref_c, tol, "c_n", dtype=dtype)
    else:
        assert cn is None


def test_cython_cell_forward_errors(cy):
    x = np.zeros((2, 3, 4))
    k, r = np.zeros((4, 12)), np.zeros((3, 12))
    with pytest.raises(ValueError, match=r"cell: got 7, expected 0 \(SimpleRNN\)"):
        cy.cell_forward(x, k, r, cell=7)
    with pytest.raises(ValueError, match=r"expected \(4, 9\) and \(3, 9\)"):
        cy.cell_forward(x, k, r, cell=CELL["gru"])
    with pytest.raises(ValueError, match=r"c0: got \(1, 3\), expected \(2, 3\)"):
        cy.cell_forward(x, k, r, c0=np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"crnn: invalid argument.*status -2"):
        cy.cell_forward(x, k, r, recurrent_activation=9)


# --------------------------------------------------------------------------------------------
# The examples' own setup.py files (what the README tells users to run)


@pytest.mark.parametrize("example, module", [(C_EXAMPLE, "crnn_embed_demo"),
                                             (CY_EXAMPLE, "crnn_embed_cy")],
                         ids=["c", "cython"])
def test_example_setup_py_builds(tmp_path, example, module):
    pytest.importorskip("setuptools", reason="setuptools is needed for the setup.py route")
    if module == "crnn_embed_cy":
        pytest.importorskip("Cython", reason="Cython is needed to build the Cython example")
    work = tmp_path / "example"
    shutil.copytree(example, work)
    env = _child_env()
    env["CFLAGS"] = (env.get("CFLAGS", "") + " -O0").strip()  # build time only; see above
    _run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], str(work),
         f"python setup.py build_ext --inplace ({module})", env=env)
    proc = _run([sys.executable, "-c", f"import {module}; print({module}.core_version())"],
                str(work), f"importing {module}", env=_child_env(str(work)))
    major, minor, patch = crnn._core.version()
    assert int(proc.stdout.strip()) == major * 10000 + minor * 100 + patch
