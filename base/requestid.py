"""Every request has an id: the caller's sane ``X-Request-ID`` or one made here.

The id goes back in the response's ``X-Request-ID``, into every log line of the request
(``RequestIdFilter``, and structlog's context) and into every audit row the request
writes (``base.events.record`` reads ``current()``). A job run by a worker is bound the
same way with ``job:<id>`` (``bound``), so what it records points at the job, not at a
request that ended long ago.
"""

import contextlib
import logging
import re
import uuid

import structlog

__all__ = ["HEADER", "RequestIdFilter", "RequestIdMiddleware", "bound", "current", "new_id"]

HEADER = "X-Request-ID"
_META = "HTTP_X_REQUEST_ID"
# What a proxy or client may hand us: short, printable, nothing that could break a log line
# or a CSV cell.
_SANE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,63}$")


def new_id() -> str:
    return uuid.uuid4().hex


def current() -> dict:
    """The context of what runs now: ``request_id``, ``address`` and ``face`` when known."""
    return structlog.contextvars.get_contextvars()


@contextlib.contextmanager
def bound(**context):
    """Bind ``context`` (e.g. ``request_id="job:<id>"``) for the block's duration."""
    with structlog.contextvars.bound_contextvars(**context):
        yield


class RequestIdMiddleware:
    """First of the middleware, so that everything after it logs with the id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from base import faces  # not at import: logging loads this module before the apps

        incoming = request.META.get(_META, "")
        request_id = incoming if _SANE.match(incoming) else new_id()
        request.request_id = request_id
        context = {"request_id": request_id,
                   "address": request.META.get("REMOTE_ADDR") or None,
                   "face": str(faces.face_of(request))}
        structlog.contextvars.bind_contextvars(**context)
        try:
            response = self.get_response(request)
        except BaseException:
            _unbind(request_id)
            raise
        response[HEADER] = request_id
        # Unbound when the answer is closed, not here: Django logs a 4xx or 5xx answer
        # (``django.request``) after the middleware has returned, and that line needs the
        # id; a streamed answer (a CSV export) is produced after that too.
        response._resource_closers.append(lambda: _unbind(request_id))
        return response


def _unbind(request_id: str) -> None:
    if current().get("request_id") == request_id:
        structlog.contextvars.unbind_contextvars("request_id", "address", "face")


class RequestIdFilter(logging.Filter):
    """Gives every log record a ``request_id`` ("-" outside a request or a job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current().get("request_id", "-")
        return True
