"""Build crnn_embed_cy against the installed crnn: headers and .pxd only, nothing to link.

    pip install crnn cython setuptools
    python setup.py build_ext --inplace
    python -c "import crnn_embed_cy"
"""
import os

import crnn
from Cython.Build import cythonize
from setuptools import Extension, setup

# `from crnn.crnn cimport ...` needs the directory *above* the crnn package on Cython's include
# path (it holds crnn/crnn.pxd); the C compiler needs crnn.get_include() for the headers.
CRNN_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(crnn.__file__)))

setup(
    name="crnn-embed-cy",
    version="0.1",
    ext_modules=cythonize(
        [Extension("crnn_embed_cy", ["crnn_embed_cy.pyx"], include_dirs=[crnn.get_include()])],
        include_path=[CRNN_PARENT],
        compiler_directives={"language_level": "3"},
    ),
)
