"""``manage.py chaos``: VM jobs through the API while workers, brokers and stamps die,
then the portal reconciled against the stamp (``portal.bench.chaos``).

It runs on the database of the current settings; the broker is the settings' unless
``--broker`` names one the run starts itself (which is the only kind it restarts). It
stops every process it started, and exits non-zero when any count of its report is not
zero.
"""

import json
import logging

from django.core.management.base import BaseCommand, CommandError

from portal.bench import chaos
from portal.bench.stack import StackFailed
from portal.management.commands.bench import Command as BenchCommand
from portal.management.commands.bench import _positive


def _faults(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = set(names) - set(chaos.FAULTS)
    if unknown or not names:
        raise ValueError(text)
    return names


class Command(BaseCommand):
    help = ("Create, checkpoint and delete VMs through the API while processes are killed "
            "and the stamp fails; then reconcile the portal against the stamp.")

    def add_arguments(self, parser):
        parser.add_argument("--jobs", type=_positive, default=200,
                            help="jobs to ask for (VM creates, checkpoints, deletes); "
                                 "default %(default)s")
        parser.add_argument("--clients", type=_positive, default=4,
                            help="concurrent API clients; default %(default)s")
        parser.add_argument("--faults", type=_faults, default=list(chaos.FAULTS),
                            help="faults to inject in turn, comma-separated, from: "
                                 + ", ".join(chaos.FAULTS) + "; default all")
        parser.add_argument("--fault-every", type=float, default=5.0,
                            help="seconds between two faults; default %(default)s")
        parser.add_argument("--broker", choices=chaos.BROKERS, default="settings",
                            help="settings: the configured one (restarted only if it is the "
                                 "embedded one); embedded: an embedded broker of the run's "
                                 "own; redis-server: a Redis server of the run's own "
                                 "(nothing on disk); default %(default)s")
        parser.add_argument("--worker-concurrency", type=_positive, default=2,
                            help="Celery worker processes; default %(default)s")
        parser.add_argument("--drain-timeout", type=float, default=300.0,
                            help="seconds every job gets to end once all were asked for; "
                                 "default %(default)s")
        parser.add_argument("--seed", type=int, default=1, help="seed of the fault dice")
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help="also print the figures as one line of JSON")

    def handle(self, *args, jobs, clients, faults, fault_every, broker, worker_concurrency,
               drain_timeout, seed, as_json, **options):
        logging.getLogger("httpx").setLevel(logging.WARNING)
        restore = BenchCommand._stop_on_sigterm()
        try:
            report = chaos.run(jobs=jobs, clients=clients, fault_every=fault_every,
                               faults=faults, broker=broker,
                               worker_concurrency=worker_concurrency,
                               drain_timeout=drain_timeout, seed=seed, say=self.stderr.write)
        except StackFailed as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            raise CommandError("Interrupted; the processes it started are stopped.") from None
        finally:
            restore()
        self.stdout.write(chaos.render(report))
        if as_json:
            self.stdout.write(json.dumps(report.figures))
        if report.failures:
            raise CommandError("chaos: " + ", ".join(f"{name} {count}" for name, count
                                                    in report.failures.items()))
