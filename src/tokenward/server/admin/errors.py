"""Errors of the admin layer, one class per outcome a surface must tell apart. Each message is
safe to show: it never contains a secret."""

from __future__ import annotations

from typing import ClassVar

__all__ = ["AdminError", "Conflict", "Invalid", "NotFound"]


class AdminError(Exception):
    """A refused administrative request (400)."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "invalid_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(AdminError):
    """The request is well-formed but a value is not acceptable (422)."""

    status = 422
    code = "validation_failed"


class NotFound(AdminError):
    status = 404
    code = "not_found"


class Conflict(AdminError):
    """The change conflicts with what exists (a duplicate id or scope name)."""

    status = 409
    code = "conflict"
