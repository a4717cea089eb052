"""Domain events: an audit row for each, and the explicit table of what they trigger.

Handlers run inside the emitting transaction, so what they record (a job, say) is
committed together with the change or not at all; work outside the database is
scheduled by them with ``transaction.on_commit``.
"""

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db import models

from portal.models import AuditEvent

__all__ = ["emit", "on"]

Handler = Callable[[models.Model, Any], None]
_handlers: dict[str, list[Handler]] = defaultdict(list)


def on(event: str) -> Callable[[Handler], Handler]:
    """Register a handler: ``@events.on("vm.created")``."""

    def register(handler: Handler) -> Handler:
        if handler not in _handlers[event]:
            _handlers[event].append(handler)
        return handler

    return register


def _tenant_id(obj: models.Model):
    for path in ("tenant_id", "subscription.tenant_id"):
        target = obj
        try:
            for part in path.split("."):
                target = getattr(target, part)
        except AttributeError:
            continue
        return target
    return None


def emit(event: str, obj: models.Model, *, acting_user=None, **detail) -> None:
    AuditEvent.objects.create(
        event=event,
        actor=acting_user if acting_user is not None and acting_user.is_authenticated else None,
        tenant_id=_tenant_id(obj),
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        detail={k: str(v) for k, v in detail.items()},
    )
    for handler in _handlers.get(event, []):
        handler(obj, acting_user)
