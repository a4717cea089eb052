"""Errors that services raise. They speak of the domain, not of HTTP; the API and the
web UI translate them (problem+json, form errors).

``ErrorCode`` lists every code the portal gives clients: the last segment of a
problem's ``type`` URL. Clients and tests match on these values, so a member's value
never changes once published; a new rule gets a new member.
"""

import enum
from typing import Any

__all__ = ["RETRY_AFTER_SECONDS", "Conflict", "ErrorCode", "Forbidden", "Invalid",
           "NotAuthenticated", "NotFound", "QuotaExceeded", "ServiceError", "TooManyAttempts"]


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
    # Logins: too many failures lock the account or the address for a while.
    LOGIN_LOCKED = "login-locked"
    OTP_REQUIRED = "otp-required"  # the account has two-factor: send the code as ``otp``
    OTP_INVALID = "otp-invalid"
    OTP_ENROLMENT_REQUIRED = "otp-enrolment-required"  # staff without a device yet
    OTP_STAFF_DEVICE = "otp-staff-device"  # staff cannot turn two-factor off
    TOKEN_EXPIRED = "token-expired"
    # The provider's fabric.
    STAMP_DISABLED = "stamp-disabled"  # the stamp takes nothing new on its clouds
    STAMP_IN_USE = "stamp-in-use"  # clouds or jobs still use the stamp
    STAMP_INCAPABLE = "stamp-incapable"  # the stamp's driver cannot do what the work needs
    # Plans, subscriptions and their quota.
    QUOTA_EXCEEDED = "quota-exceeded"
    PLAN_DECOMMISSIONED = "plan-decommissioned"
    PLAN_FULL = "plan-full"
    ADDON_ATTACHED = "addon-attached"
    SUBSCRIPTION_STATE = "subscription-state"
    SUBSCRIPTION_NOT_READY = "subscription-not-ready"  # not yet commissioned on its stamp
    POOL_EXHAUSTED = "pool-exhausted"  # no external address left for a new subscription
    # Billing: a month still running cannot be issued.
    INVOICE_PERIOD_OPEN = "invoice-period-open"
    # Resources and their jobs.
    VM_STATE = "vm-state"
    NETWORK_DEFAULT = "network-default"
    NETWORK_STATE = "network-state"
    NETWORK_IN_USE = "network-in-use"
    NETWORK_FULL = "network-full"
    SNAPSHOT_STATE = "snapshot-state"
    JOB_STATE = "job-state"
    # Self-service tasks.
    TASK_BUSY = "task-busy"  # another run is unfinished on the same object
    TASK_RUN_STATE = "task-run-state"  # approve or reject a run that is not waiting
    TASK_CHOICES_UNAVAILABLE = "task-choices-unavailable"  # refused: fail closed
    # Disaster recovery.
    DR_STATE = "dr-state"
    DR_BUSY = "dr-busy"
    DRILL_CHECK = "drill-check"  # a drill's recovery copies did not all start


# What a client is told to wait (``Retry-After``) before retrying a request that met work in
# progress: a job's step on a stamp takes seconds (API.md: a 409 that a retry can cure).
RETRY_AFTER_SECONDS = 5

# Conflicts that always end by themselves: the commission job finishes, the first request
# with the same Idempotency-Key is answered, the DR job in flight ends.
_TRANSIENT_CODES = frozenset({ErrorCode.SUBSCRIPTION_NOT_READY, ErrorCode.TASK_BUSY,
                              ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS, ErrorCode.DR_BUSY})


class ServiceError(Exception):
    """Base of the errors services raise: a ``detail`` for people, a ``code`` for
    programs, and ``errors`` per field when the input is at fault. ``retry_after`` (seconds)
    is set when the same request may succeed later, once work in progress has ended."""

    status = 400
    code = ErrorCode.INVALID
    title = "Bad request"

    def __init__(self, detail: str, *, errors: dict[str, Any] | None = None,
                 code: ErrorCode | None = None, transient: bool = False):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}
        if code:
            self.code = code
        transient = transient or self.code in _TRANSIENT_CODES
        self.retry_after: int | None = RETRY_AFTER_SECONDS if transient else None


class Invalid(ServiceError):
    """The input breaks a rule (400)."""


class NotAuthenticated(ServiceError):
    """The credentials are missing or wrong (401)."""

    status = 401
    code = ErrorCode.NOT_AUTHENTICATED
    title = "Not authenticated"


class TooManyAttempts(ServiceError):
    """Refused until ``retry_after`` seconds have passed (429)."""

    status = 429
    code = ErrorCode.LOGIN_LOCKED
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, **kwargs):
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


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

    @classmethod
    def in_state(cls, obj, detail: str, *, code: ErrorCode) -> "Conflict":
        """The request does not fit ``obj``'s state; while that state is one of its model's
        ``TRANSITIONAL_STATES`` a job is acting on it, and a retry after it can succeed."""
        transitional = getattr(type(obj), "TRANSITIONAL_STATES", frozenset())
        return cls(detail, code=code, transient=obj.state in transitional)


class QuotaExceeded(Conflict):
    """``errors`` names each dimension over its limit with requested, used and limit."""

    code = ErrorCode.QUOTA_EXCEEDED
    title = "Quota exceeded"
