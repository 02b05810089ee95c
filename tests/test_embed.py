"""Embedding crnn's C core in other extensions, against the *installed* crnn (issue 6).

During the test run this module compiles

* examples/c_extension/crnn_embed_demo.c, a C extension that includes only crnn_capi.h (found
  through ``crnn.get_include()``) and calls ``import_crnn()``: it links nothing of crnn's and no
  BLAS, and calls the core on NumPy buffers with the GIL released, including a streaming loop in
  C that feeds one timestep per call with the state carried from call to call;
* examples/cython_extension/crnn_embed_cy.pyx, a Cython extension that cimports the declarations
  shipped in the package (``from crnn.crnn cimport ...``, crnn/crnn.pxd) and reaches the core
  through the same capsule;

and checks both against ``crnn.reference``. The compiler is called directly with the flags of
``sysconfig`` (no setuptools needed); the examples' own setup.py files are built as well when
setuptools is available. Everything is built in a temporary directory.

Tolerances: as in test_core.py (``_helpers.derived_tol``): the extensions run crnn's own core, so
the same derivation applies; the reference runs in float64 on the same (upcast) inputs.
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

from _helpers import assert_close, derived_tol, make_stack_weights, scaled, stack_k, to64

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO_ROOT, "examples")
C_EXAMPLE = os.path.join(EXAMPLES, "c_extension")
CY_EXAMPLE = os.path.join(EXAMPLES, "cython_extension")

ACT = {"tanh": 0, "relu": 1, "sigmoid": 2, "linear": 3}
DIR = {"forward": 0, "reverse": 1, "bidirectional": 2}


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
