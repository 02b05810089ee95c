"""Small ONNX models for the tests, built with the ``onnx`` package (imported when called)."""
from __future__ import annotations

import numpy as np


def onnx_model(nodes, inputs, outputs, inits=(), opset=17) -> bytes:
    """Serialized model from nodes, ``(name, elem_type, shape)`` inputs and outputs, and
    ``{name: array}`` initializers."""
    from onnx import helper as oh
    from onnx import numpy_helper
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                      [oh.make_tensor_value_info(n, t, s) for n, t, s in outputs],
                      [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()
