"""``manage.py bench provisioning|jobs|dr|metering|scale|stampsim|ipam``: benchmarks, most
against a stack the command starts.

It runs on the database and broker of the current settings (set ``DATABASE_URL`` and
``CELERY_BROKER_URL`` to measure PostgreSQL and Redis; with neither, the embedded
SQLite defaults under ``BUFFET_VAR_DIR``) and stops every process it started, on
success, error or Ctrl-C.
"""

import json
import logging
import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.bench import chart, dr, ipam, jobs, metering, provisioning, scale, stampsim
from portal.bench.stack import POOLS, StackFailed


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = ("Benchmark VM creates through the HTTP API against a minimal authenticated "
            "insert, on a stack (stampsim, worker, gunicorn) the command starts.")

    def add_arguments(self, parser):
        parser.add_argument("scenario",
                            choices=["provisioning", "dr", "metering", "scale", "jobs",
                                     "stampsim", "ipam"])
        parser.add_argument("--vms", type=_positive, default=None,
                            help="dr: VMs in the protected subscription (default 200); "
                                 "metering: VMs on the stamp (default 100000)")
        parser.add_argument("--keep", action="store_true",
                            help="metering, scale: keep what it created in the database")
        parser.add_argument("--tenants", type=_positive, default=10_000,
                            help="scale: tenants (default %(default)s); subscriptions, VMs, "
                                 "jobs and steps follow at 2, 10, 10 and 100 per tenant "
                                 "unless given")
        parser.add_argument("--subscriptions", type=_positive, default=None)
        parser.add_argument("--jobs", type=_positive, default=None)
        parser.add_argument("--steps", type=_positive, default=None)
        parser.add_argument("--stages", default="0.01,0.1,1",
                            help="scale: seed in these fractions of the scale and time every "
                                 "endpoint after each; default %(default)s")
        parser.add_argument("--chart", default="",
                            help="scale: write an SVG of p95 against rows to this file")
        parser.add_argument("--sizes", default="0,1500,20000,60000",
                            help="ipam: addresses held in the network before the claims, "
                                 "comma-separated; default %(default)s")
        parser.add_argument("--pools", default="prefork,threads",
                            help="jobs: worker pools to compare, comma-separated "
                                 f"({', '.join(POOLS)}); default %(default)s")
        parser.add_argument("--latencies", default="0,50",
                            help="dr: stampsim latencies in ms, comma-separated; "
                                 "default %(default)s")
        parser.add_argument("--clients", type=_positive, default=16,
                            help="concurrent API clients (threads); default %(default)s")
        parser.add_argument("--duration", type=float, default=20.0,
                            help="seconds each phase lasts at most; default %(default)s")
        parser.add_argument("--requests", type=_positive, default=None,
                            help="requests each phase sends at most, all clients together "
                                 "(ipam: claims a size, default 50)")
        parser.add_argument("--worker-concurrency", type=_positive, default=2,
                            help="Celery worker processes; default %(default)s")
        parser.add_argument("--drain-timeout", type=float, default=900.0,
                            help="seconds to wait for the jobs to end after the clients "
                                 "stop; default %(default)s")
        parser.add_argument("--deletes", choices=provisioning.DELETES, default="after",
                            help="provisioning: the VMs are deleted after the creates "
                                 "(the VM phase measures creates alone) or during them "
                                 "too; default %(default)s")
        parser.add_argument("--pool", choices=POOLS, default="prefork",
                            help="provisioning: the worker's pool, prefork (the worker's "
                                 "processes) or threads (four times as many, as the "
                                 "portal runs the stamps' queues); default %(default)s")
        parser.add_argument("--operations", type=_positive, default=10_000,
                            help="stampsim: calls per phase (default %(default)s)")
        parser.add_argument("--rate", type=float, default=50.0,
                            help="stampsim: calls a second, on schedule; 0 is as fast as "
                                 "they go (default %(default)s)")
        parser.add_argument("--retention-hours", type=float, default=24.0,
                            help="stampsim: the operation retention of the pruned phase "
                                 "(the other keeps everything); default %(default)s")
        parser.add_argument("--slice", type=_positive, default=1000, dest="slice_size",
                            help="stampsim: calls per line of figures (default %(default)s)")
        parser.add_argument("--fsync", action="store_true",
                            help="stampsim: let stampsim fsync its journal (it runs "
                                 "with --no-fsync otherwise)")
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help="also print the figures as one line of JSON")

    def handle(self, *args, scenario, clients, duration, requests, worker_concurrency,
               drain_timeout, as_json, vms, latencies, keep=False, **options):
        # A log line per request would cost the clients more than some requests do.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if scenario == "dr":
            return self._dr(vms or 200, latencies, as_json)
        if scenario == "ipam":
            return self._ipam(options["sizes"], requests or 50, as_json)
        if scenario == "metering":
            return self._metering(vms or 100_000, keep, as_json)
        if scenario == "jobs":
            return self._jobs(requests or 2000, options["pools"], worker_concurrency, as_json)
        if scenario == "stampsim":
            return self._stampsim(as_json, **options)
        if scenario == "scale":
            tenants = options["tenants"]
            try:
                stages = tuple(float(f) for f in options["stages"].split(",") if f.strip())
            except ValueError:
                raise CommandError("--stages takes fractions of the scale, e.g. "
                                   "0.01,0.1,1") from None
            figures = scale.run(
                tenants=tenants, subscriptions=options["subscriptions"] or 2 * tenants,
                vms=vms or 10 * tenants, jobs=options["jobs"] or 10 * tenants,
                steps=options["steps"] or 100 * tenants, requests=requests or 30, keep=keep,
                stages=stages, say=self.stderr.write)
            self.stdout.write(scale.render(figures))
            if options["chart"]:
                Path(options["chart"]).write_text(chart.latency_svg(
                    figures["curve"], goal_ms=figures["goal_p95_ms"],
                    title=f"bench scale on {figures['database']}: p95 of each endpoint "
                          f"against the rows"))
                self.stderr.write(f"chart written to {options['chart']}")
            if as_json:
                self.stdout.write(json.dumps(figures, default=str))
            return None
        figures = self._measure(provisioning, as_json, clients=clients, duration=duration,
                                requests=requests, worker_concurrency=worker_concurrency,
                                drain_timeout=drain_timeout, deletes=options["deletes"],
                                pool=options["pool"],
                                say=self.stderr.write)
        jobs = figures["jobs"]
        if jobs["ended"] < jobs["total"]:
            raise CommandError(f"{jobs['total'] - jobs['ended']} jobs had not ended after "
                               f"{drain_timeout:.0f} s")

    def _measure(self, bench, as_json: bool, **arguments):
        """Run ``bench.run(**arguments)`` with its stack stopped on SIGTERM, Ctrl-C or a
        failure, print ``bench.render`` of its figures (and the JSON), and return them."""
        restore = self._stop_on_sigterm()
        try:
            figures = bench.run(**arguments)
        except StackFailed as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            raise CommandError("Interrupted; the processes it started are stopped.") from None
        finally:
            restore()
        self.stdout.write(bench.render(figures))
        if as_json:
            self.stdout.write(json.dumps(figures))
        return figures

    def _jobs(self, n: int, pools: str, worker_concurrency: int, as_json: bool) -> None:
        chosen = [pool.strip() for pool in pools.split(",") if pool.strip()]
        if not chosen or set(chosen) - set(POOLS):
            raise CommandError(f"--pools takes {', '.join(POOLS)}, comma-separated")
        self._measure(jobs, as_json, jobs=n, pools=chosen,
                      worker_concurrency=worker_concurrency, say=self.stderr.write)

    def _dr(self, vms: int, latencies: str, as_json: bool) -> None:
        try:
            levels = [int(level) for level in latencies.split(",") if level.strip()]
        except ValueError:
            raise CommandError("--latencies takes whole milliseconds, e.g. 0,50") from None
        self._measure(dr, as_json, vms=vms, latencies=levels, say=self.stderr.write)

    def _ipam(self, sizes: str, claims: int, as_json: bool) -> None:
        try:
            levels = tuple(int(size) for size in sizes.split(",") if size.strip())
        except ValueError:
            raise CommandError("--sizes takes whole numbers, e.g. 0,1500,20000") from None
        if not levels or min(levels) < 0:
            raise CommandError("--sizes takes whole numbers of 0 or more")
        self._measure(ipam, as_json, sizes=levels, claims=claims, say=self.stderr.write)

    def _metering(self, vms: int, keep: bool, as_json: bool) -> None:
        restore = self._stop_on_sigterm()
        try:
            figures = metering.run(vms=vms, keep=keep, say=self.stderr.write)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            raise CommandError("Interrupted; the processes it started are stopped.") from None
        finally:
            restore()
        self.stdout.write(metering.render(figures))
        if as_json:
            self.stdout.write(json.dumps(figures))
        if figures["rows"] != figures["expected_rows"]:
            raise CommandError(f"{figures['rows']} rows for the minute, expected "
                               f"{figures['expected_rows']}")

    def _stampsim(self, as_json: bool, *, operations: int, rate: float,
                  retention_hours: float, slice_size: int, fsync: bool, **_) -> None:
        if rate < 0 or retention_hours <= 0:
            raise CommandError("--rate must be >= 0 and --retention-hours > 0")
        restore = self._stop_on_sigterm()
        try:
            figures = stampsim.run(operations=operations, rate=rate,
                                   retention_hours=retention_hours, slice_size=slice_size,
                                   fsync=fsync, say=self.stderr.write)
        except (RuntimeError, TimeoutError) as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            raise CommandError("Interrupted; the processes it started are stopped.") from None
        finally:
            restore()
        self.stdout.write(stampsim.render(figures))
        if as_json:
            self.stdout.write(json.dumps(figures))
        failed = sum(phase["error_count"] for phase in figures["phases"])
        if failed:
            raise CommandError(f"{failed} calls failed")

    @staticmethod
    def _stop_on_sigterm():
        """Turn SIGTERM into KeyboardInterrupt, so the stack is stopped as on Ctrl-C."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def interrupt(*_):
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, interrupt)
        return lambda: signal.signal(signal.SIGTERM, previous)

