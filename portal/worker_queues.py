"""Workers that follow the stamps: ``celery worker --stamp-drivers libvirt`` also consumes
the queue of every stamp of those driver kinds, registered before it started or after.

Each stamp has its own queue (``Stamp.queue``), and a worker's queues are otherwise fixed
when it starts: a stamp the provider registers later would have its jobs wait for a
restart. This consumer step looks the stamps up at start and every
``BUFFET_STAMP_QUEUES_INTERVAL`` seconds (default 5), and starts consuming what is new.
"""

import logging
import os

from celery import bootsteps
from click import Option

__all__ = ["STAMP_DRIVERS_OPTION", "StampQueues"]

log = logging.getLogger(__name__)

STAMP_DRIVERS_OPTION = Option(
    ["--stamp-drivers"], default="",
    help="Comma-separated driver kinds (e.g. libvirt): also consume the queues of their "
         "stamps, including stamps registered while the worker runs.")


class StampQueues(bootsteps.StartStopStep):
    """Adds the queues of the stamps of ``--stamp-drivers`` to the worker's consumer."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, stamp_drivers: str = "", **kwargs):
        super().__init__(parent, **kwargs)
        self.drivers = tuple(kind.strip() for kind in (stamp_drivers or "").split(",")
                             if kind.strip())
        self.interval = float(os.environ.get("BUFFET_STAMP_QUEUES_INTERVAL", "5"))
        self._timer = None

    def start(self, consumer):
        if not self.drivers:
            return
        self.refresh(consumer)
        self._timer = consumer.timer.call_repeatedly(self.interval, self.refresh, (consumer,))

    def stop(self, consumer):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def refresh(self, consumer) -> None:
        from django.db import DatabaseError, close_old_connections

        from fabric.models import Stamp

        try:
            queues = [stamp.queue for stamp in Stamp.objects.filter(driver__in=self.drivers)]
        except DatabaseError:
            # The database is away for a moment: the next refresh tries again.
            log.warning("cannot list the stamps to consume their queues", exc_info=True)
            return
        finally:
            close_old_connections()
        for queue in queues:
            if not consumer.task_consumer.consuming_from(queue):
                consumer.add_task_queue(queue)
