"""``Idempotency-Key`` on every POST: same key and body replay the first answer,
the same key with another body is a 409."""

import hashlib
import json

from django.db import IntegrityError, transaction
from rest_framework.response import Response

from base.errors import Conflict, ErrorCode, Invalid
from base.models import IdempotencyRecord

__all__ = ["IdempotentMixin"]

HEADER = "Idempotency-Key"


class _Replay(Exception):
    def __init__(self, record: IdempotencyRecord):
        self.record = record


def _fingerprint(request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, default=str)
    except Exception:  # noqa: BLE001 - an unparsable body still has bytes
        body = repr(request.body)
    raw = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


class IdempotentMixin:
    """Mix into an APIView. Wraps a keyed POST in one transaction with its record."""

    def remembered_data(self, data):
        """What a replay of this answer gives back. A view whose answer carries a secret
        shown only once (a token) returns a copy without it: no secret is stored in clear,
        in an idempotency record neither."""
        return data

    def _idempotency_key(self, request) -> str | None:
        if request.method != "POST":
            return None
        return request.headers.get(HEADER) or None

    def dispatch(self, request, *args, **kwargs):
        if self._idempotency_key(request) is None:
            return super().dispatch(request, *args, **kwargs)
        with transaction.atomic():
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self._idempotency_record = None
        key = self._idempotency_key(request)
        if key is None:
            return
        if len(key) > 255:
            raise Invalid("Idempotency-Key is longer than 255 characters.",
                          errors={HEADER: ["At most 255 characters."]})
        scope = str(request.user.pk) if request.user.is_authenticated else "anonymous"
        fingerprint = _fingerprint(request)
        try:
            with transaction.atomic():
                self._idempotency_record = IdempotencyRecord.objects.create(
                    scope=scope, key=key, fingerprint=fingerprint)
                return
        except IntegrityError:
            pass
        record = IdempotencyRecord.objects.get(scope=scope, key=key)
        if record.fingerprint != fingerprint:
            raise Conflict("This Idempotency-Key was used with another request.",
                           code=ErrorCode.IDEMPOTENCY_KEY_REUSED)
        if record.status_code is None:
            raise Conflict("A request with this Idempotency-Key is still being processed.",
                           code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS)
        raise _Replay(record)

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            response = Response(exc.record.body, status=exc.record.status_code)
            response["Idempotent-Replayed"] = "true"
            if exc.record.location:
                response["Location"] = exc.record.location
            return response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        record = getattr(self, "_idempotency_record", None)
        if record is not None:
            if 200 <= response.status_code < 300:
                record.status_code = response.status_code
                record.body = self.remembered_data(response.data)
                record.location = response.headers.get("Location", "")
                record.save(update_fields=["status_code", "body", "location"])
            else:
                # An error is not remembered: nothing was done, the client may retry.
                transaction.set_rollback(True)
        return response
