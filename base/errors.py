"""Errors that services raise. They speak of the domain, not of HTTP; the API and the
web UI translate them (problem+json, form errors).

``ErrorCode`` lists every code the portal gives clients: the last segment of a
problem's ``type`` URL. Clients and tests match on these values, so a member's value
never changes once published; a new rule gets a new member.
"""

import enum
from typing import Any

__all__ = ["Conflict", "ErrorCode", "Forbidden", "Invalid", "NotFound", "QuotaExceeded",
           "ServiceError"]


class ErrorCode(enum.StrEnum):
    """The ``code`` of a service error, and of the problem+json answer it becomes."""

    # The default code of each kind of error, and of an HTTP status without a rule.
    INVALID = "invalid"  # 400
    NOT_AUTHENTICATED = "not-authenticated"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not-found"  # 404
    METHOD_NOT_ALLOWED = "method-not-allowed"  # 405
    NOT_ACCEPTABLE = "not-acceptable"  # 406
    CONFLICT = "conflict"  # 409
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"  # 415
    THROTTLED = "throttled"  # 429
    SERVER_ERROR = "server-error"  # 500
    ERROR = "error"  # any other status
    # Requests and their Idempotency-Key.
    IDEMPOTENCY_KEY_REUSED = "idempotency-key-reused"
    IDEMPOTENCY_KEY_IN_PROGRESS = "idempotency-key-in-progress"
    # Accounts: the link of an invitation that cannot be accepted (any more).
    INVITATION_INVALID = "invitation-invalid"  # no such invitation
    INVITATION_EXPIRED = "invitation-expired"
    INVITATION_USED = "invitation-used"
    INVITATION_REPLACED = "invitation-replaced"  # the member was invited again since
    # The provider's fabric.
    STAMP_DISABLED = "stamp-disabled"  # the stamp takes nothing new on its clouds
    STAMP_IN_USE = "stamp-in-use"  # clouds or jobs still use the stamp
    # Plans, subscriptions and their quota.
    QUOTA_EXCEEDED = "quota-exceeded"
    PLAN_DECOMMISSIONED = "plan-decommissioned"
    PLAN_FULL = "plan-full"
    ADDON_ATTACHED = "addon-attached"
    SUBSCRIPTION_STATE = "subscription-state"
    SUBSCRIPTION_NOT_READY = "subscription-not-ready"  # not yet commissioned on its stamp
    POOL_EXHAUSTED = "pool-exhausted"  # no external address left for a new subscription
    # Resources and their jobs.
    VM_STATE = "vm-state"
    NETWORK_DEFAULT = "network-default"
    NETWORK_STATE = "network-state"
    NETWORK_IN_USE = "network-in-use"
    NETWORK_FULL = "network-full"
    SNAPSHOT_STATE = "snapshot-state"
    JOB_STATE = "job-state"
    # Disaster recovery.
    DR_STATE = "dr-state"
    DR_BUSY = "dr-busy"
    DRILL_CHECK = "drill-check"  # a drill's recovery copies did not all start


class ServiceError(Exception):
    """Base of the errors services raise: a ``detail`` for people, a ``code`` for
    programs, and ``errors`` per field when the input is at fault."""

    status = 400
    code = ErrorCode.INVALID
    title = "Bad request"

    def __init__(self, detail: str, *, errors: dict[str, Any] | None = None,
                 code: ErrorCode | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}
        if code:
            self.code = code


class Invalid(ServiceError):
    """The input breaks a rule (400)."""


class Forbidden(ServiceError):
    status = 403
    code = ErrorCode.FORBIDDEN
    title = "Forbidden"


class NotFound(ServiceError):
    status = 404
    code = ErrorCode.NOT_FOUND
    title = "Not found"


class Conflict(ServiceError):
    """The request does not fit the current state (409)."""

    status = 409
    code = ErrorCode.CONFLICT
    title = "Conflict"


class QuotaExceeded(Conflict):
    """``errors`` names each dimension over its limit with requested, used and limit."""

    code = ErrorCode.QUOTA_EXCEEDED
    title = "Quota exceeded"
