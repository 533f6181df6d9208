"""The OpenAPI document as client generators need it, finished in one place.

FastAPI writes the document (OpenAPI 3.1, JSON Schema from pydantic); ``install`` makes
``app.openapi`` return it with these changes, made once and cached:

- binary fields: pydantic writes an ``UploadFile`` as ``contentMediaType:
  application/octet-stream``, which generators (openapi-python-client,
  datamodel-code-generator, openapi-typescript) read as a plain string, so a generated
  client cannot send a file. It becomes ``format: binary`` (what every generator maps to
  a file type, and what 3.0 documents use). The document stays 3.1: pydantic's schemas
  (``type: null`` in unions, ``examples`` lists) are not valid 3.0, so declaring 3.0
  would be a lie that validators and generators trip over.
- form bodies: FastAPI names them ``Body_<operation id>``; they become
  ``<OperationId>Form`` (e.g. UploadDatasetForm), and any request body written inline
  (``openapi_extra``) is moved into ``components/schemas`` under its title.
- pages: pydantic names ``Page[DatasetRead]`` ``Page_DatasetRead_``; it becomes
  ``DatasetReadPage``.
- models that no body refers to but clients need (an event's data) are added by name.
- operation ids are the route functions' names (``create_app`` sets them); a duplicate
  (two routes with one function name) is refused here, at the first call, where FastAPI
  would only warn and publish a document whose generated clients lose an operation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
FORM_MEDIA_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

Document = dict[str, Any]


def operation_id(route: APIRoute) -> str:
    """A route's operation id: its function's name (``create_dataset``, ``predict``)."""
    return route.name


def install(app: FastAPI, extra_models: Sequence[type[BaseModel]]) -> None:
    """Make ``app.openapi()`` return the finished document (built on first call)."""
    build: Callable[[], Document] = app.openapi

    def openapi() -> Document:
        if app.openapi_schema is None:
            app.openapi_schema = finish(build(), extra_models)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def finish(doc: Document, extra_models: Sequence[type[BaseModel]]) -> Document:
    """``doc`` with the changes the module docstring lists (modified in place)."""
    _check_operation_ids(doc)
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    _add_models(schemas, extra_models)
    _name_schemas(doc, schemas)
    _binary_strings(doc)
    return doc


def _operations(doc: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _check_operation_ids(doc: Document) -> None:
    seen: dict[str, str] = {}
    for path, method, operation in _operations(doc):
        where = f"{method.upper()} {path}"
        op_id = str(operation.get("operationId", ""))
        if not op_id or op_id in seen:
            also = seen.get(op_id, "missing")
            raise ValueError(f"{where}: operation id {op_id!r} is not unique ({also})")
        seen[op_id] = where


def _add_models(schemas: dict[str, Any], models: Sequence[type[BaseModel]]) -> None:
    """Each model's serialization schema (and those it refers to) under its own name."""
    _, top = models_json_schema(
        [(model, "serialization") for model in models], ref_template=REF + "{model}"
    )
    for name, schema in top.get("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both called {name}")


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))


def _name_schemas(doc: Document, schemas: dict[str, Any]) -> None:
    """Request bodies as named components (``Body_<op>`` renamed, inline ones moved);
    pages renamed."""
    renames = {
        name: f"{match[1]}Page" for name in schemas if (match := re.fullmatch(r"Page_(\w+)_", name))
    }
    for _path, _method, operation in _operations(doc):
        content = operation.get("requestBody", {}).get("content", {})
        for media_type, media in content.items():
            schema = media.get("schema")
            if not isinstance(schema, dict):
                continue
            suffix = "Form" if media_type in FORM_MEDIA_TYPES else "Body"
            wanted = _camel(operation["operationId"]) + suffix
            ref = schema.get("$ref", "")
            if ref.startswith(REF + "Body_"):
                renames[ref.removeprefix(REF)] = wanted
            elif not ref and schema.get("type") == "object":
                name = schema.get("title") or wanted
                for inner, definition in schema.pop("$defs", {}).items():
                    schemas.setdefault(inner, definition)
                if schemas.setdefault(name, schema) != schema:
                    raise ValueError(f"two different schemas are both called {name}")
                media["schema"] = {"$ref": REF + name}
    for old, new in renames.items():
        schemas[new] = {**schemas.pop(old), "title": new}
    if renames:
        _replace_refs(doc, {REF + old: REF + new for old, new in renames.items()})


def _replace_refs(node: Any, refs: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in refs:
            node["$ref"] = refs[ref]
        for value in node.values():
            _replace_refs(value, refs)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, refs)


def _binary_strings(node: Any) -> None:
    """``contentMediaType: application/octet-stream`` strings -> ``format: binary``."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("contentMediaType") == (
            "application/octet-stream"
        ):
            del node["contentMediaType"]
            node["format"] = "binary"
        for value in node.values():
            _binary_strings(value)
    elif isinstance(node, list):
        for value in node:
            _binary_strings(value)
