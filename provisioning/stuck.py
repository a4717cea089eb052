"""The sweeper of stuck resources: what is left in a transitional state is marked failed.

A VM, network, checkpoint or site in one of its model's ``TRANSITIONAL_STATES`` says a
job is in flight, and that job's end hook moves it on (the default network's is the
commission's, a job on the site). When no live job acts on it any
more (a job that gave up without its hook running, a hook that never ran), nothing ever
will: past ``BUFFET_STUCK_RESOURCE_SECONDS`` in that state it goes to ``failed`` through
its ``mark_failed`` transition, with a warning in the log and an audit row. Its tenant can
then delete it, or a provider can retry its job: the transitions that end a job accept
``failed``, so a late job still settles it.

Quota is left alone: a failed resource keeps what it holds until its delete (or its
job's retry) settles it, so the ledger is never below what the fabric may hold.

Beat runs ``reset_stuck_resources_task`` (``portal.schedules``); a second run finds
nothing more to do.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from base import events
from base.events import Event
from provisioning.models import JOB_TERMINAL_STATES, Job, Network, Site, Snapshot, VirtualMachine

__all__ = ["acting_jobs", "reset_stuck_resources"]

log = logging.getLogger(__name__)

# What the sweeper looks at, and the audit event of each.
_EVENTS: dict[type[models.Model], Event] = {
    VirtualMachine: Event.VM_STUCK,
    Network: Event.NETWORK_STUCK,
    Snapshot: Event.SNAPSHOT_STUCK,
    Site: Event.SITE_STUCK,
}


def _label(model: type[models.Model]) -> str:
    return model._meta.label_lower  # what ``engine.enqueue`` stores as the job's resource


def acting_jobs(resource: VirtualMachine | Network | Snapshot | Site) -> models.QuerySet[Job]:
    """The live jobs that may still move ``resource``: its own; for a VM, those of its
    checkpoints too (a restore moves the VM); and every job on its subscription as a whole,
    whose resource is none of these kinds (a suspend stops VMs; an add-on's job, such as
    DR's on a protection, builds and removes the recovery site)."""
    if isinstance(resource, Snapshot):
        subscription_id = resource.vm.subscription_id
    else:
        subscription_id = resource.subscription_id
    acting = Q(resource_type=_label(type(resource)), resource_id=str(resource.pk))
    if isinstance(resource, Network) and resource.is_default:
        # The default network is made by the commission, a job on the site.
        acting |= Q(resource_type=_label(Site), subscription_id=subscription_id)
    if isinstance(resource, VirtualMachine):
        checkpoints = [str(pk) for pk in resource.snapshots.values_list("pk", flat=True)]
        acting |= Q(resource_type=_label(Snapshot), resource_id__in=checkpoints)
    acting |= Q(subscription_id=subscription_id) & ~Q(
        resource_type__in=[_label(model) for model in _EVENTS])
    return Job.objects.exclude(state__in=JOB_TERMINAL_STATES).filter(acting)


def reset_stuck_resources(*, now: datetime | None = None,
                          older_than: timedelta | None = None) -> list[str]:
    """Mark failed every VM, network, checkpoint and site in a transitional state since
    before ``now - older_than`` (``BUFFET_STUCK_RESOURCE_SECONDS`` by default) that no live
    job acts on. Returns what it marked, as ``"<model label> <id>"``."""
    now = now or timezone.now()
    if older_than is None:
        older_than = timedelta(seconds=settings.BUFFET_STUCK_RESOURCE_SECONDS)
    deadline = now - older_than
    marked = []
    for model, event in _EVENTS.items():
        stuck = model.objects.filter(state__in=model.TRANSITIONAL_STATES,
                                     state_changed_at__lt=deadline)
        for pk in stuck.values_list("pk", flat=True):
            if _mark_failed(model, pk, deadline, event):
                marked.append(f"{_label(model)} {pk}")
    return marked


@transaction.atomic
def _mark_failed(model: type[models.Model], pk, deadline: datetime, event: Event) -> bool:
    """One resource in its own transaction, looked at again under its row lock: one that
    has moved on since the first look, or that a job acts on again, is left alone."""
    resource = model.objects.select_for_update().filter(
        pk=pk, state__in=model.TRANSITIONAL_STATES, state_changed_at__lt=deadline).first()
    if resource is None or acting_jobs(resource).exists():
        return False
    was, since = resource.state, resource.state_changed_at
    resource.mark_failed()
    resource.save()
    log.warning("%s %s was %s since %s with no job acting on it: marked failed",
                _label(model), pk, was, since.isoformat())
    events.record(event, resource, was=was, since=since.isoformat())
    return True
