"""Errors raised by the engine.

Every error is a ``ValueError`` carrying a human-readable ``message`` and a ``loc``: the
path of the offending input, in the style of pydantic locations, so that the service can
map it onto a request field (``("layers", 2, "activation")``, ``("optimizer",
"learning_rate")``, ``("x", 3, 1)``). List indices in ``loc`` are 0-based; messages
number layers from 1 as the primer does (layer 1 holds W1).
"""

from __future__ import annotations


class EngineError(ValueError):
    """Base class of every error the engine raises on purpose."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc

    def __str__(self) -> str:
        if not self.loc:
            return self.message
        return f"{'.'.join(str(part) for part in self.loc)}: {self.message}"


class ConfigError(EngineError):
    """A bad architecture, loss, initialiser or hyperparameter."""


class DataError(EngineError):
    """Features or targets that do not fit the network or its loss."""


class InputWidthError(DataError):
    """Rows of features whose width is not the network's input size."""


class DivergenceError(EngineError):
    """Training produced a non-finite loss or non-finite weights."""


class ExportFormatError(EngineError):
    """A refused file: an npz or .npy that is malformed or unsafe (``npzio``), or a model
    export (arrays or JSON config) or checkpoint whose content is not what it must be."""
