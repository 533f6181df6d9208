"""OpenAPI documentation of the model export and model card responses (non-JSON bodies)."""

from __future__ import annotations

from typing import Any

from app.services import export_python, model_card_markdown

_DISPOSITION = {
    "Content-Disposition": {
        "description": "attachment; the file name is the model id plus .onnx, .py or .npz",
        "schema": {"type": "string"},
        "example": 'attachment; filename="mdl_3f9a0c1b2d4e5f60.onnx"',
    }
}

_PYTHON_EXAMPLE = '''"""Backprop model mdl_3f9a0c1b2d4e5f60 as one Python file; it needs only NumPy.
...
def forward(x):
    a = x  # a[0] = x
    for W_l, b_l, g_l in zip(W, b, ACTIVATIONS):
        z = a @ W_l.T + b_l  # z[l] = W[l]·a[l-1] + b[l]
        a = G[g_l](z)  # a[l] = g[l](z[l])
    return a
...
'''

EXPORT_FORMAT_DOC: dict[str, Any] = {
    "description": (
        "onnx: an ONNX model (input x float32 (N, n_features); outputs, and labels for "
        "classifiers); python: one .py file that needs only NumPy; npz: the engine's "
        "arrays (W1.., b1.., x_mean/x_std), as /weights"
    ),
    "openapi_examples": {
        "onnx": {"summary": "ONNX, for onnxruntime and other ONNX runtimes", "value": "onnx"},
        "python": {"summary": "A NumPy-only Python predictor", "value": "python"},
        "npz": {"summary": "The engine's npz (the default)", "value": "npz"},
    },
}

EXPORT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "The model file, streamed. format=onnx: an ONNX model (input x, outputs "
            "outputs and labels) with metadata properties model_id, task, classes, "
            "feature_names and backprop_version; format=npz: np.savez arrays; "
            "format=python: Python source"
        ),
        "headers": _DISPOSITION,
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "examples": {
                    "onnx": {
                        "summary": "format=onnx",
                        "description": "An ONNX ModelProto (protobuf bytes)",
                        "value": "<binary ONNX model>",
                    },
                    "npz": {
                        "summary": "format=npz",
                        "description": "A zip of .npy arrays W1.., b1.., x_mean, x_std",
                        "value": "<binary npz>",
                    },
                },
            },
            export_python.MEDIA_TYPE.split(";")[0]: {
                "schema": {"type": "string"},
                "example": _PYTHON_EXAMPLE,
            },
        },
    }
}

_CARD_EXAMPLE = """# Model card: mdl_3f9a0c1b2d4e5f60

Made 2026-12-01T12:00:00+00:00 by Backprop 0.1.0.

## Architecture

A dense network 2-4-1 (17 parameters), loss `binary_crossentropy`, task `binary`; ...
"""

CARD_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The model card (the card object of GET /v1/models/{id}, as Markdown)",
        "content": {
            model_card_markdown.MEDIA_TYPE.split(";")[0]: {
                "schema": {"type": "string"},
                "example": _CARD_EXAMPLE,
            }
        },
    }
}
