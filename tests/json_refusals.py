"""A check shared by the JSON parsing tests: a parser refuses exactly what json.loads does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest


def assert_refused_like_json_loads(parse: Callable[[bytes], Any], document: bytes) -> None:
    """``parse(document)`` raises the same exception type, with the same message, as
    ``json.loads(document)`` (a JSONDecodeError or a UnicodeDecodeError)."""
    with pytest.raises(ValueError) as expected:
        json.loads(document)
    with pytest.raises(ValueError) as refused:
        parse(document)
    assert type(refused.value) is type(expected.value)
    assert str(refused.value) == str(expected.value)
