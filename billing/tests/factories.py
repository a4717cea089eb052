"""Factories of billing: usage records as the meters write them, one per minute.

    usage(subscription, "burst.vcpus", 1, start=at(10, 0), minutes=3)
"""

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from billing import rollup
from billing.models import UsageRecord

__all__ = ["usage"]


def usage(subscription, meter: str, quantity, *, start: datetime, minutes: int = 1,
          resource_id=None) -> list[UsageRecord]:
    """``minutes`` records of ``meter`` from ``start`` (a whole minute) on, and their hours
    summed again (as the collector keeps them); a burst meter's resource is the
    subscription itself."""
    resource_id = resource_id or (subscription.pk if meter.startswith("burst.")
                                  else uuid.uuid4())
    stamp = subscription.plan.cloud.stamp
    kind = "subscription" if meter.startswith("burst.") else "vm"
    rows = UsageRecord.objects.bulk_create(
        UsageRecord(subscription=subscription, stamp=stamp, resource_type=kind,
                    resource_id=resource_id, meter=meter,
                    minute=start + timedelta(minutes=n), quantity=Decimal(quantity))
        for n in range(minutes))
    rollup.rebuild(start, start + timedelta(minutes=minutes), subscription=subscription)
    return rows
