"""Build crnn_embed_demo against the installed crnn: headers only, nothing to link.

    pip install crnn            # or pip install -e /path/to/crnn
    python setup.py build_ext --inplace
    python -c "import crnn_embed_demo"
"""
import crnn
from setuptools import Extension, setup

setup(
    name="crnn-embed-demo",
    version="0.1",
    ext_modules=[
        Extension(
            "crnn_embed_demo",
            sources=["crnn_embed_demo.c"],
            include_dirs=[crnn.get_include()],  # crnn.h and crnn_capi.h
        )
    ],
)
