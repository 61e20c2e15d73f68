"""Errors the HTTP layer turns into 4xx answers that name the offending field."""

from __future__ import annotations


class RequestError(ValueError):
    """A request that is well-formed but names something unusable (unknown item, bad param)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status
