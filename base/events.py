"""Domain events: the audit trail of every change, keyed by ``Event``.

``record`` writes one ``AuditEvent`` row inside the caller's transaction, so the row is
committed together with the change or not at all. Nothing reacts to an event: flows are
explicit service calls (the subscription lifecycle reads top to bottom in
``provisioning.lifecycle``). The table is for people reading the audit trail and for
outside consumers (webhooks later).
"""

import enum

from django.db import models

from base.models import AuditEvent

__all__ = ["Event", "record"]


class Event(enum.StrEnum):
    """Every event the portal records. The value is what the audit row stores."""

    # A member added without an account was sent a link to set a password; accepting it
    # activates the account (``tenants.services``).
    INVITATION_CREATED = "invitation.created"
    INVITATION_ACCEPTED = "invitation.accepted"
    STAMP_REGISTERED = "stamp.registered"
    STAMP_CHANGED = "stamp.changed"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_ACTIVE = "subscription.active"
    SUBSCRIPTION_FAILED = "subscription.failed"
    SUBSCRIPTION_SUSPENDED = "subscription.suspended"
    SUBSCRIPTION_RESUMED = "subscription.resumed"
    SUBSCRIPTION_DELETING = "subscription.deleting"
    SUBSCRIPTION_DELETED = "subscription.deleted"
    ADDON_ATTACHED = "addon.attached"
    ADDON_DETACHED = "addon.detached"
    NETWORK_REQUESTED = "network.requested"
    VM_REQUESTED = "vm.requested"
    VM_CREATED = "vm.created"
    VM_DELETED = "vm.deleted"
    DR_TEST_FAILOVER = "dr.test_failover"
    DR_PLANNED = "dr.planned"
    DR_UNPLANNED = "dr.unplanned"
    DR_FAILBACK = "dr.failback"
    JOB_RETRIED = "job.retried"
    JOB_CANCELLED = "job.cancelled"
    # A resource found in a transitional state past its deadline with no job acting on it,
    # and marked failed (``provisioning.stuck``).
    VM_STUCK = "vm.stuck"
    NETWORK_STUCK = "network.stuck"
    SNAPSHOT_STUCK = "snapshot.stuck"
    SITE_STUCK = "site.stuck"


def _tenant_id(obj: models.Model):
    for path in ("tenant_id", "subscription.tenant_id", "vm.subscription.tenant_id"):
        target = obj
        try:
            for part in path.split("."):
                target = getattr(target, part)
        except AttributeError:
            continue
        return target
    return None


def record(event: Event, obj: models.Model, *, acting_user=None, **detail) -> AuditEvent:
    """Write the audit row of ``event`` on ``obj`` (who, which tenant, what)."""
    return AuditEvent.objects.create(
        event=Event(event).value,
        actor=acting_user if acting_user is not None and acting_user.is_authenticated else None,
        tenant_id=_tenant_id(obj),
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        detail={k: str(v) for k, v in detail.items()},
    )
