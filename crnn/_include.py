"""Where the C headers of an installed crnn live, for building other extensions against it."""
from __future__ import annotations

import os

_HEADERS = ("crnn.h", "crnn_capi.h")


def get_include() -> str:
    """Return the directory holding ``crnn.h`` and ``crnn_capi.h``.

    Pass it as an include directory when compiling a C or Cython extension that uses crnn's C
    core through the capsule ``crnn._core._C_API`` (``#include "crnn_capi.h"`` and call
    ``import_crnn()``; nothing to link)::

        Extension("mymod", ["mymod.c"], include_dirs=[crnn.get_include()])

    For a regular install this is ``<site-packages>/crnn/include``, which the build copies from
    ``csrc/include``. For an editable install (``pip install -e``) the headers are not copied;
    the source tree's ``csrc/include`` is returned instead.

    Cython: the declarations are ``crnn/crnn.pxd`` inside the package, cimported as
    ``from crnn.crnn cimport ...``. Cython resolves that through its include path, which must
    contain the directory *above* the ``crnn`` package,
    ``os.path.dirname(os.path.dirname(crnn.__file__))``; pass it as
    ``cythonize(..., include_path=[...])`` (or ``cython -I``). Cython also searches
    ``sys.path``, which covers regular installs but not editable ones (their import hook is
    invisible to Cython), so pass it explicitly. The C compiler still needs
    ``include_dirs=[crnn.get_include()]`` for the headers that the ``.pxd`` names.

    Returns
    -------
    str
        An absolute path.

    Raises
    ------
    FileNotFoundError
        If neither location holds the headers (a broken install).
    """
    package = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(package, "include"),  # regular install: copied by setup.py's build_py
        os.path.join(os.path.dirname(package), "csrc", "include"),  # source tree / editable
    ]
    for path in candidates:
        if all(os.path.isfile(os.path.join(path, h)) for h in _HEADERS):
            return path
    raise FileNotFoundError(
        f"crnn headers {', '.join(_HEADERS)} not found in any of {candidates}; reinstall crnn")
