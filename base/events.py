"""Domain events: the audit trail of every change, keyed by ``Event``.

``record`` writes one ``AuditEvent`` row inside the caller's transaction, so the row is
committed together with the change or not at all. Every service that changes state
records exactly one event per action it accepts (the jobs it starts keep their own step
log). Nothing reacts to an event: flows are explicit service calls (the subscription
lifecycle reads top to bottom in ``provisioning.lifecycle``). The table is for people
reading the audit trail and for outside consumers (webhooks later).

A row says who (the actor, the address and face of the request), which tenant, which
object, what (the event, and ``before``/``after``: only the fields that changed), and
under which request id (``base.requestid``; ``job:<id>`` in a worker). No secret is ever
written: every value passes through ``redact``, which hides each field whose name is a
secret's (passwords, tokens, credentials, keys, ...), however deep.
"""

import datetime
import decimal
import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from base import requestid
from base.batch import Pending
from base.models import AuditEvent

__all__ = ["REDACTED", "Event", "changes", "is_secret", "record", "redact", "values"]

REDACTED = "[redacted]"
# A field is a secret when a word of its name is one of these: ``password``,
# ``console_password``, ``credentials``, ``api_key``, ``token``, ``bin_key``, ``digest``.
_SECRET_WORDS = {"password", "passwd", "passphrase", "pwd", "secret", "secrets", "token",
                 "tokens", "credential", "credentials", "key", "keys", "digest", "otp",
                 "authorization", "cookie", "hint", "private", "signature", "cert"}
_WORD = re.compile(r"[a-z0-9]+")


def is_secret(name: str) -> bool:
    """Whether a field called ``name`` holds (part of) a secret."""
    words = _WORD.findall(re.sub(r"([a-z])([A-Z])", r"\1_\2", str(name)).lower())
    return any(word in _SECRET_WORDS for word in words)


def redact(value: Any) -> Any:
    """``value`` as JSON, with every secret field's value replaced by ``REDACTED``."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


def values(obj: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The current values of ``obj``'s concrete fields (or of ``fields``), as JSON, by
    name: a foreign key by its id, many-to-many fields as sorted lists of ids (only when
    named). Secret fields are left out altogether."""
    meta = obj._meta
    names = list(fields) if fields is not None else [
        f.name for f in meta.concrete_fields if not f.primary_key]
    found = {}
    for name in names:
        if is_secret(name):
            continue
        field = meta.get_field(name)
        if field.many_to_many:
            found[name] = sorted(str(pk) for pk in getattr(obj, name).values_list(
                "pk", flat=True)) if obj.pk else []
        elif field.is_relation:
            found[name] = redact(getattr(obj, field.attname))
        else:
            found[name] = redact(field.value_from_object(obj))
    return found


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only what differs between two dicts of field values: ``(before, after)``."""
    before, after = redact(dict(before or {})), redact(dict(after or {}))
    keys = [k for k in {**before, **after} if before.get(k, _MISSING) != after.get(k, _MISSING)]
    return ({k: before[k] for k in keys if k in before},
            {k: after[k] for k in keys if k in after})


_MISSING = object()


class Event(enum.StrEnum):
    """Every event the portal records. The value is what the audit row stores."""

    # A member added without an account was sent a link to set a password; accepting it
    # activates the account (``tenants.services``).
    INVITATION_CREATED = "invitation.created"
    INVITATION_ACCEPTED = "invitation.accepted"
    # Accounts and their safety (``tenants.services``, ``tenants.apps``).
    TENANT_CREATED = "tenant.created"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_LOCKED_OUT = "login.locked_out"
    LOGIN_UNLOCKED = "login.unlocked"
    PASSWORD_CHANGED = "password.changed"
    TWO_FACTOR_ADDED = "two_factor.added"
    TWO_FACTOR_REMOVED = "two_factor.removed"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    SESSION_ENDED = "session.ended"
    SESSIONS_ENDED = "sessions.ended"
    MEMBER_ADDED = "member.added"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    # The provider's catalog (``fabric.services``, ``plans.services``, ``dr_addon.services``).
    STAMP_REGISTERED = "stamp.registered"
    STAMP_CHANGED = "stamp.changed"
    STAMP_DELETED = "stamp.deleted"
    STAMP_CHECKED = "stamp.checked"
    CLOUD_CREATED = "cloud.created"
    CLOUD_CHANGED = "cloud.changed"
    TEMPLATE_CREATED = "template.created"
    TEMPLATE_CHANGED = "template.changed"
    PLAN_CREATED = "plan.created"
    PLAN_CHANGED = "plan.changed"
    ADDON_CREATED = "addon.created"
    ADDON_CHANGED = "addon.changed"
    NETWORK_MAPPING_CREATED = "network_mapping.created"
    NETWORK_MAPPING_CHANGED = "network_mapping.changed"
    NETWORK_MAPPING_DELETED = "network_mapping.deleted"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_ACTIVE = "subscription.active"
    SUBSCRIPTION_FAILED = "subscription.failed"
    SUBSCRIPTION_SUSPENDED = "subscription.suspended"
    SUBSCRIPTION_RESUMED = "subscription.resumed"
    SUBSCRIPTION_DELETING = "subscription.deleting"
    SUBSCRIPTION_DELETED = "subscription.deleted"
    # A subscription moved to another plan of its cloud; its burst switch or cap changed
    # (``plans.services.change_plan``, ``configure_burst``).
    SUBSCRIPTION_PLAN_CHANGED = "subscription.plan_changed"
    SUBSCRIPTION_BURST_CHANGED = "subscription.burst_changed"
    ADDON_ATTACHED = "addon.attached"
    ADDON_DETACHED = "addon.detached"
    # The month's burst spending reached the subscription's cap: its burst room is closed
    # to new reservations until next month (``plans.services.record_burst_spending``).
    BURST_CAPPED = "burst.capped"
    NETWORK_REQUESTED = "network.requested"
    NETWORK_DELETING = "network.deleting"
    VM_REQUESTED = "vm.requested"
    VM_STARTING = "vm.starting"
    VM_STOPPING = "vm.stopping"
    VM_RESTARTING = "vm.restarting"
    VM_RESIZING = "vm.resizing"
    VM_DELETING = "vm.deleting"
    SNAPSHOT_REQUESTED = "snapshot.requested"
    SNAPSHOT_RESTORING = "snapshot.restoring"
    SNAPSHOT_DELETING = "snapshot.deleting"
    VM_CREATED = "vm.created"
    VM_DELETED = "vm.deleted"
    DR_TEST_FAILOVER = "dr.test_failover"
    DR_PLANNED = "dr.planned"
    DR_UNPLANNED = "dr.unplanned"
    DR_FAILBACK = "dr.failback"
    TASK_SAVED = "task.saved"
    TASK_HIDDEN = "task.hidden"
    TASK_RUN_REQUESTED = "task_run.requested"
    TASK_RUN_APPROVED = "task_run.approved"
    TASK_RUN_REJECTED = "task_run.rejected"
    JOB_RETRIED = "job.retried"
    JOB_CANCELLED = "job.cancelled"
    # A resource found in a transitional state past its deadline with no job acting on it,
    # and marked failed (``provisioning.stuck``).
    VM_STUCK = "vm.stuck"
    NETWORK_STUCK = "network.stuck"
    SNAPSHOT_STUCK = "snapshot.stuck"
    SITE_STUCK = "site.stuck"


def _tenant_id(obj: models.Model | None):
    if obj is None:
        return None
    for path in ("tenant_id", "subscription.tenant_id", "vm.subscription.tenant_id",
                 "membership.tenant_id"):
        target = obj
        try:
            for part in path.split("."):
                target = getattr(target, part)
        except AttributeError:
            continue
        return target
    return None


def record(event: Event, obj: models.Model | None, *, acting_user=None,
           before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
           tenant=None, writes: Pending | None = None, **detail) -> AuditEvent:
    """Write the audit row of ``event`` on ``obj`` (who, which tenant, what).

    ``before``/``after``: the object's field values before and after the change (e.g.
    from ``values``); only those that differ are kept. ``tenant`` when the object does not
    lead to one (a user). ``obj`` may be None for an account that does not exist (a
    failed login names only the email it was tried with). With ``writes``, the row is
    added to them, for the caller to write."""
    before, after = changes(before, after)
    context = requestid.current()
    address = context.get("address") or None
    row = AuditEvent(
        event=Event(event).value,
        actor=acting_user if acting_user is not None and acting_user.is_authenticated else None,
        tenant_id=tenant.pk if tenant is not None else _tenant_id(obj),
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        detail={k: REDACTED if is_secret(k) else str(redact(v)) for k, v in detail.items()},
        before=before, after=after,
        request_id=str(context.get("request_id", ""))[:64],
        address=address,
        face=str(context.get("face", ""))[:16],
    )
    if writes is not None:
        writes.add(row)
    else:
        row.save(force_insert=True)
    return row
