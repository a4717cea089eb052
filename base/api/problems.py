"""RFC 9457 problem details for every API error."""

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from base.errors import RETRY_AFTER_SECONDS, ErrorCode, ServiceError

__all__ = ["PROBLEM_CONTENT_TYPE", "exception_handler", "problem", "problem_type"]

PROBLEM_CONTENT_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 406: "Not acceptable", 409: "Conflict",
    415: "Unsupported media type", 429: "Too many requests", 500: "Server error",
}
_CODES = {400: ErrorCode.INVALID, 401: ErrorCode.NOT_AUTHENTICATED, 403: ErrorCode.FORBIDDEN,
          404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED,
          406: ErrorCode.NOT_ACCEPTABLE, 409: ErrorCode.CONFLICT,
          415: ErrorCode.UNSUPPORTED_MEDIA_TYPE, 429: ErrorCode.THROTTLED,
          500: ErrorCode.SERVER_ERROR}


def problem_type(code: ErrorCode) -> str:
    return f"{settings.BUFFET_PROBLEM_BASE}/{code}"


def problem(status_code: int, detail: str, *, code: ErrorCode | None = None,
            title: str | None = None, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {
        "type": problem_type(code or _CODES.get(status_code, ErrorCode.ERROR)),
        "title": title or _TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF nests errors like the input; clients get ``{"a.b": ["message"]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(detail, list) and detail and all(not isinstance(d, (dict, list))
                                                      for d in detail):
        out[prefix or "non_field_errors"] = [str(d) for d in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                out.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _first_message(errors: dict[str, list[str]]) -> str:
    for field, messages in errors.items():
        if messages:
            return messages[0] if field == "non_field_errors" else f"{field}: {messages[0]}"
    return "The request is not valid."


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )

    headers = {}
    if isinstance(exc, ServiceError):
        body = problem(exc.status, exc.detail, code=exc.code, title=exc.title,
                       errors=exc.errors or None)
        status_code = exc.status
        if exc.retry_after:
            headers["Retry-After"] = str(int(exc.retry_after))
        view = context.get("view")
        if status_code == 401 and view is not None:
            headers["WWW-Authenticate"] = view.get_authenticate_header(context["request"]) \
                or "Token"
    elif isinstance(exc, exceptions.APIException):
        status_code = exc.status_code
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, exceptions.Throttled):
            # Always a whole number of seconds, at least one (API.md: a 429 carries it).
            wait = exc.wait if exc.wait is not None else RETRY_AFTER_SECONDS
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        if isinstance(exc, exceptions.ValidationError):
            errors = _flatten(exc.detail)
            body = problem(status_code, _first_message(errors), errors=errors)
        else:
            detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            body = problem(status_code, str(detail))
    else:
        return None  # a real bug: let Django answer 500 and log it

    set_rollback()
    response = Response(body, status=status_code, headers=headers,
                         content_type=PROBLEM_CONTENT_TYPE)
    return response


def json_problem_response(status_code: int, detail: str) -> JsonResponse:
    return JsonResponse(problem(status_code, detail), status=status_code,
                        content_type=PROBLEM_CONTENT_TYPE)


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return json_problem_response(status.HTTP_404_NOT_FOUND, "Not found.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return json_problem_response(500, "The server failed; the error was recorded.")
    from django.views.defaults import server_error

    return server_error(request)
