"""Failed logins and the lockout they lead to (django-axes, configured in settings).

Every failed login counts: a wrong password (``django.contrib.auth.authenticate`` says so
to axes), a wrong two-factor code (``record_failure``). ``BUFFET_LOGIN_FAILURE_LIMIT``
failures lock the account and ``BUFFET_LOGIN_ADDRESS_FAILURE_LIMIT`` lock the address,
until ``BUFFET_LOGIN_LOCKOUT_MINUTES`` after the last one; while locked, even the right
password is refused. An email that has no account counts and locks exactly like one that
has, so the answers never tell which addresses are registered.

On the public face of a split portal a staff account cannot log in at all, so failures
there are kept apart from the account's own count (``attempt_username``): the Internet
cannot lock the provider out of its own portal. The address still counts them.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db.models import Max, Sum
from django.utils import timezone

from base import faces
from tenants.models import User

__all__ = ["LockedOut", "Lockout", "LoginAttempts", "attempt_username", "current_lockouts",
           "lockout_of", "record_failure"]

PUBLIC_FACE_SUFFIX = " (public face)"


def attempt_username(request, credentials: dict | None) -> str | None:
    """The account a login attempt counts against: the email, in lower case."""
    credentials = credentials or {}
    raw = credentials.get("email") or credentials.get("username")
    if not raw:
        return None
    email = str(raw).strip().lower()
    on_public_face = (request is not None and faces.is_split()
                      and not faces.serves_provider(request))
    if on_public_face and User.objects.filter(email__iexact=email, is_staff=True).exists():
        return email + PUBLIC_FACE_SUFFIX
    return email


class LoginAttempts(AxesDatabaseHandler):
    """axes' database handler with a limit of its own for the account and for the
    address (``AXES_LOCKOUT_PARAMETERS`` is ``["username", "ip_address"]``)."""

    def get_failures(self, request, credentials=None) -> int:
        # The account's failures: what axes compares with AXES_FAILURE_LIMIT.
        account, _address = self.get_user_attempts(request, credentials)
        return account.aggregate(n=Sum("failures_since_start"))["n"] or 0

    def is_locked(self, request, credentials=None) -> bool:
        return _lockout(self, request, credentials) is not None


@dataclass(frozen=True)
class Lockout:
    until: datetime

    @property
    def seconds(self) -> int:
        return max(1, math.ceil((self.until - timezone.now()).total_seconds()))

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))

    @property
    def message(self) -> str:
        unit = "minute" if self.minutes == 1 else "minutes"
        return f"Too many failed logins: try again in {self.minutes} {unit}."


def _lockout(handler: AxesDatabaseHandler, request, credentials) -> Lockout | None:
    limits = [settings.BUFFET_LOGIN_FAILURE_LIMIT, settings.BUFFET_LOGIN_ADDRESS_FAILURE_LIMIT]
    ends = []
    for attempts, limit in zip(handler.get_user_attempts(request, credentials), limits,
                               strict=True):
        seen = attempts.aggregate(n=Sum("failures_since_start"), last=Max("attempt_time"))
        if (seen["n"] or 0) >= limit:
            ends.append(seen["last"] + get_cool_off(request))
    return Lockout(until=max(ends)) if ends else None


def lockout_of(request, email: str) -> Lockout | None:
    """The lockout that refuses a login to ``email`` from this request's address."""
    AxesProxyHandler.update_request(request)
    return _lockout(AxesProxyHandler.get_implementation(), request, {"email": email})


def record_failure(request, email: str) -> None:
    """Count a failed login that ``authenticate`` did not see: a wrong two-factor code."""
    user_login_failed.send(sender=__name__, credentials={"email": email}, request=request)


@dataclass(frozen=True)
class LockedOut:
    """A locked account or address, as the provider's lockout page lists it."""

    kind: str  # "account" or "address"
    value: str
    failures: int
    last_attempt: datetime
    until: datetime


def current_lockouts() -> list[LockedOut]:
    """Every account and address locked now, the latest first."""
    cool_off = get_cool_off()
    recent = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - cool_off)
    found = []
    for field, kind, limit in (("username", "account", settings.BUFFET_LOGIN_FAILURE_LIMIT),
                               ("ip_address", "address",
                                settings.BUFFET_LOGIN_ADDRESS_FAILURE_LIMIT)):
        rows = (recent.exclude(**{f"{field}__isnull": True}).values(field)
                .annotate(n=Sum("failures_since_start"), last=Max("attempt_time"))
                .filter(n__gte=limit))
        found += [LockedOut(kind, row[field], row["n"], row["last"], row["last"] + cool_off)
                  for row in rows]
    return sorted(found, key=lambda lock: lock.last_attempt, reverse=True)
