"""The operations of the OpenAPI document, so tests cover new endpoints automatically."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: Mapping[str, Any]

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    def url(self, ids: Mapping[str, str]) -> str:
        return self.path.format(**{name: ids[name] for name in self.path_params})

    @property
    def secured(self) -> bool:
        return bool(self.spec.get("security"))

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def operations(app: FastAPI) -> Iterator[Operation]:
    for path, item in app.openapi()["paths"].items():
        for method in METHODS:
            if method in item:
                yield Operation(method, path, item[method])
