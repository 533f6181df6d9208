"""A model as an ONNX graph that computes what ``POST /v1/models/{id}/predict`` answers.

Input ``x``: float32 (N, n[0]), N dynamic. The graph, in the primer's notation:

    x' = (x - x_mean) / x_std                 Sub, Div        (standardised models only)
    z[l] = W[l]·a[l-1] + b[l]                 Gemm(a, W[l], b[l], transB=1)
    a[l] = g[l](z[l])                         one op per activation (ONNX_ACTIVATIONS)
    outputs = a[L]                            (N, n[L])

and for classifiers ``labels`` (N,), the predict rule: a constant tensor of the classes
indexed (Gather) by ``outputs[:, 0] > 0.5`` (binary) or ``ArgMax(outputs, axis=1)``
(multiclass; the first of equal scores, as NumPy's argmax). A float64 model casts x to
double first and answers in double, as its predict does. Metadata properties: the model
id, task, classes and feature names (JSON) and the Backprop version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.engine.activations import LEAKY_SLOPE
from app.engine.labels import fits_int64
from app.services.errors import Invalid
from app.services.export_source import FORMAT_LOC, ExportSource

OPSET = 28  # the newest opset of onnx 1.23 (the version this was written against)
MAX_EXACT_INT = 2**53  # integers a double label tensor holds exactly

Node = onnx.NodeProto


def _sigmoid(z: str, a: str) -> list[Node]:
    return [helper.make_node("Sigmoid", [z], [a])]


def _tanh(z: str, a: str) -> list[Node]:
    return [helper.make_node("Tanh", [z], [a])]


def _relu(z: str, a: str) -> list[Node]:
    return [helper.make_node("Relu", [z], [a])]


def _leaky_relu(z: str, a: str) -> list[Node]:
    # z for z >= 0, slope·z otherwise: the engine's max(z, slope·z) for a slope below 1.
    return [helper.make_node("LeakyRelu", [z], [a], alpha=LEAKY_SLOPE)]


def _softmax(z: str, a: str) -> list[Node]:
    return [helper.make_node("Softmax", [z], [a], axis=-1)]


def _linear(z: str, a: str) -> list[Node]:
    return [helper.make_node("Identity", [z], [a])]


# The ONNX nodes of each engine activation (app.engine.activations.ACTIVATIONS): z -> a.
ONNX_ACTIVATIONS: dict[str, Callable[[str, str], list[Node]]] = {
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "softmax": _softmax,
    "linear": _linear,
}


def _refuse(why: str) -> Invalid:
    return Invalid(
        f"this model cannot be exported as ONNX: {why}; format=python or format=npz can",
        FORMAT_LOC,
        error_type="not_exportable",
    )


def label_tensor(classes: list[Any]) -> TensorProto:
    """The classes as one constant tensor: strings, booleans, int64 or (mixed) doubles."""
    kinds = {type(c) for c in classes}
    if kinds == {str}:
        return helper.make_tensor("classes", TensorProto.STRING, [len(classes)], classes)
    if kinds == {bool}:
        return numpy_helper.from_array(np.asarray(classes, dtype=np.bool_), "classes")
    if bool in kinds:
        raise _refuse("its classes mix booleans with numbers, which no ONNX tensor holds")
    if kinds == {int}:
        if not all(map(fits_int64, classes)):
            raise _refuse("a class label does not fit a 64-bit integer")
        return numpy_helper.from_array(np.asarray(classes, dtype=np.int64), "classes")
    if any(isinstance(c, int) and abs(c) > MAX_EXACT_INT for c in classes):
        raise _refuse("its classes mix floats with integers too large for a double")
    return numpy_helper.from_array(np.asarray(classes, dtype=np.float64), "classes")


def _forward(source: ExportSource, elem: int) -> tuple[list[Node], list[TensorProto]]:
    """Nodes and initializers from ``x`` to ``outputs``."""
    model = source.model
    nodes: list[Node] = []
    inits: list[TensorProto] = []
    dtype = model.network.dtype
    a = "x"
    if elem != TensorProto.FLOAT:  # predict: JSON -> float32 -> the network dtype
        nodes.append(helper.make_node("Cast", ["x"], ["x_cast"], to=elem))
        a = "x_cast"
    if model.x_mean is not None and model.x_std is not None:
        inits += [
            numpy_helper.from_array(np.asarray(model.x_mean, dtype=dtype), "x_mean"),
            numpy_helper.from_array(np.asarray(model.x_std, dtype=dtype), "x_std"),
        ]
        nodes += [
            helper.make_node("Sub", [a, "x_mean"], ["x_centred"]),
            helper.make_node("Div", ["x_centred", "x_std"], ["x_standardised"]),
        ]
        a = "x_standardised"
    network = model.network
    for l, (w, b, name) in enumerate(  # noqa: E741 (l is the primer's layer index)
        zip(network.weights, network.biases, network.activations, strict=True), start=1
    ):
        if name not in ONNX_ACTIVATIONS:
            raise _refuse(f"layer {l} uses activation {name!r}, which has no ONNX mapping")
        inits += [
            numpy_helper.from_array(np.ascontiguousarray(w), f"W{l}"),
            numpy_helper.from_array(np.ascontiguousarray(b), f"b{l}"),
        ]
        z = f"z{l}"
        nodes.append(helper.make_node("Gemm", [a, f"W{l}", f"b{l}"], [z], transB=1))
        a = "outputs" if l == network.depth else f"a{l}"
        nodes += ONNX_ACTIVATIONS[name](z, a)
    return nodes, inits


def _labels(task: str, elem: int) -> tuple[list[Node], list[TensorProto]]:
    """Nodes and initializers from ``outputs`` to ``labels``, via the ``classes`` tensor."""
    if task == "binary":
        threshold = np.asarray(0.5, dtype=helper.tensor_dtype_to_np_dtype(elem))
        inits = [
            numpy_helper.from_array(np.asarray(0, dtype=np.int64), "first_column"),
            numpy_helper.from_array(threshold, "threshold"),
        ]
        nodes = [
            helper.make_node("Gather", ["outputs", "first_column"], ["p"], axis=1),
            helper.make_node("Greater", ["p", "threshold"], ["positive"]),  # p > 0.5
            helper.make_node("Cast", ["positive"], ["class_index"], to=TensorProto.INT64),
        ]
    else:
        inits = []
        nodes = [helper.make_node("ArgMax", ["outputs"], ["class_index"], axis=1, keepdims=0)]
    nodes.append(helper.make_node("Gather", ["classes", "class_index"], ["labels"], axis=0))
    return nodes, inits


def build_onnx(source: ExportSource) -> onnx.ModelProto:
    """The ONNX model of ``source`` (see the module docstring); 422 when it cannot be one."""
    model = source.model
    network = model.network
    elem = helper.np_dtype_to_tensor_dtype(network.dtype)
    classes = None if source.classes is None else label_tensor(source.classes)
    nodes, inits = _forward(source, elem)
    outputs = [helper.make_tensor_value_info("outputs", elem, ["N", network.output_size])]
    if classes is not None:
        label_nodes, label_inits = _labels(model.task, elem)
        nodes += label_nodes
        inits += [classes, *label_inits]
        outputs.append(helper.make_tensor_value_info("labels", classes.data_type, ["N"]))
    graph = helper.make_graph(
        nodes,
        f"backprop_{source.model_id}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", network.input_size])],
        outputs,
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    proto = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="backprop",
        producer_version=source.version,
        doc_string=f"Backprop model {source.model_id} ({model.task})",
    )
    helper.set_model_props(
        proto,
        {
            "model_id": source.model_id,
            "task": model.task,
            "classes": json.dumps(source.classes),
            "feature_names": json.dumps(source.feature_names),
            "backprop_version": source.version,
        },
    )
    return proto


def onnx_bytes(source: ExportSource) -> bytes:
    """The serialised ONNX model of ``source``."""
    data: bytes = build_onnx(source).SerializeToString()
    return data
