"""Errors that services raise. They speak of the domain, not of HTTP; the API and the
web UI translate them (problem+json, form errors)."""

from typing import Any

__all__ = ["Conflict", "Forbidden", "Invalid", "NotFound", "QuotaExceeded", "ServiceError"]


class ServiceError(Exception):
    status = 400
    code = "invalid"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: dict[str, Any] | None = None,
                 code: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}
        if code:
            self.code = code


class Invalid(ServiceError):
    """The input breaks a rule (400)."""


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(ServiceError):
    """The request does not fit the current state (409)."""

    status = 409
    code = "conflict"
    title = "Conflict"


class QuotaExceeded(Conflict):
    """``errors`` names each dimension over its limit with requested, used and limit."""

    code = "quota-exceeded"
    title = "Quota exceeded"
