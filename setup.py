"""Build crnn: the C core (csrc/) and its Cython wrapper (crnn/_core.pyx) in one extension.

BLAS: OpenBLAS from the scipy-openblas32 wheel (a build and a runtime dependency). Its include and
library directories are looked up lazily, inside build_ext, so that importing this file needs
nothing but setuptools. The extension links libscipy_openblas normally with an $ORIGIN-relative
rpath to ../scipy_openblas32/lib, and crnn/__init__.py also preloads the library with RTLD_LOCAL,
so the build environment's absolute path is never baked in.
"""
import glob
import os
import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = ["csrc/rnn.c", "csrc/rnn_f32.c", "csrc/rnn_f64.c", "csrc/parallel.c", "csrc/blas_shim.c",
        "csrc/cpu.c"]


class BuildExt(build_ext):
    """Find NumPy's and scipy-openblas32's headers and library only when building."""

    def finalize_options(self):
        super().finalize_options()
        import numpy
        import scipy_openblas32  # imported in the build process only, never at crnn run time

        for ext in self.extensions:
            ext.include_dirs += [numpy.get_include(), scipy_openblas32.get_include_dir()]
            ext.library_dirs += [scipy_openblas32.get_lib_dir()]
            ext.libraries += [scipy_openblas32.get_library()]
            ext.runtime_library_dirs += ["$ORIGIN/../scipy_openblas32/lib"]

    def build_extensions(self):
        # Cython-generated code and the C core; warnings about our C are errors where they matter.
        super().build_extensions()


class BuildPy(build_py):
    """Ship the public headers in crnn/include/, where `crnn.get_include()` finds them.

    crnn.h (the C API) and crnn_capi.h (header-only import of the C-API capsule, for other
    extensions). Editable installs skip this copy; get_include() then returns csrc/include.
    """

    HEADERS = ("crnn.h", "crnn_capi.h")

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "crnn", "include")
        os.makedirs(target, exist_ok=True)
        for name in self.HEADERS:
            shutil.copy(os.path.join(HERE, "csrc", "include", name), target)


def extensions():
    from Cython.Build import cythonize

    ext = Extension(
        "crnn._core",
        sources=["crnn/_core.pyx"] + CSRC,
        # the headers too: a change to the time loop (csrc/rnn_template.h) must rebuild
        depends=sorted(glob.glob("csrc/*.h") + glob.glob("csrc/include/*.h")),
        include_dirs=["csrc/include", "csrc"],
        define_macros=[("CRNN_BLAS_SCIPY_OPENBLAS", "1"),
                       ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # -fno-trapping-math: without it GCC will not if-convert the clamps of the activations
        # (csrc/vmath.h) without AVX-512's masks, and the AVX2 and SSE2 kernels run scalar. It
        # changes no result: only whether floating-point exception flags may be raised.
        extra_compile_args=["-O3", "-std=c99", "-fno-trapping-math",
                            "-Werror=implicit-function-declaration", "-fvisibility=hidden",
                            "-pthread"],
        extra_link_args=["-lm", "-pthread"],
    )
    return cythonize([ext], compiler_directives={"language_level": "3"},
                     include_path=[HERE])


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt, "build_py": BuildPy})
