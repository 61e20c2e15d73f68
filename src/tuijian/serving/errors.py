"""Errors the HTTP layer turns into 4xx answers that name the offending field.

Every refusal, whoever raises it (a route, validation, the framework, admission control), has
one shape, `ErrorOut`, documented in the OpenAPI schema and rendered by `error_body`.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel


class RequestError(ValueError):
    """A request that is well-formed but names something unusable (unknown item, bad param)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


class FieldError(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    """Why a request was refused, naming each offending field."""

    error: str
    detail: list[FieldError]


def error_body(message: str, detail: list[tuple[str, str]]) -> bytes:
    """The JSON of an `ErrorOut`."""
    return orjson.dumps({"error": message,
                         "detail": [{"field": f, "message": m} for f, m in detail]})
