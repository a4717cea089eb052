"""``manage.py collect_usage``: one metering pass now, for every stamp or one."""

import json
import os
import resource
import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from billing import metering
from fabric.models import Stamp


class Command(BaseCommand):
    help = "Collect the stamps' usage up to the last whole minute (what beat does each minute)."

    def add_arguments(self, parser):
        parser.add_argument("--stamp", help="only this stamp (its name)")
        parser.add_argument("--until", type=datetime.fromisoformat,
                            help="collect up to this minute (ISO 8601, UTC) instead of now")
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help="print each stamp's report, time and peak memory as JSON")
        parser.add_argument("--rate", action="store_true",
                            help="then refresh every draft invoice from the usage (what "
                                 "beat does every few minutes) and time it too")
        parser.add_argument("--crash-after-write", action="store_true",
                            help="fault injection: exit hard (75) once rows are written, "
                                 "before the cursor moves")

    def handle(self, *args, stamp, until, as_json, rate=False, crash_after_write=False,
               **options):
        after_write = (lambda: os._exit(75)) if crash_after_write else None
        stamps = Stamp.objects.order_by("name")
        if stamp:
            stamps = stamps.filter(name=stamp)
            if not stamps:
                raise CommandError(f"no stamp named {stamp!r}")
        for one in stamps:
            started = time.perf_counter()
            report = metering.collect(one, until, after_write=after_write)
            elapsed = time.perf_counter() - started
            figures = {"stamp": one.name, "minutes": report.minutes,
                       "backfilled": report.backfilled, "rows": report.rows,
                       "missing": report.missing, "unmapped": len(report.unmapped),
                       "seconds": round(elapsed, 3),
                       "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024, 1)}
            if as_json:
                self.stdout.write(json.dumps(figures))
            else:
                self.stdout.write(
                    f"{one.name}: {report.minutes} minute(s), {report.rows} rows in "
                    f"{elapsed:.2f} s" + (f"; missing: {report.detail}" if report.missing
                                          else ""))
        if rate:
            from billing import invoices

            started = time.perf_counter()
            count = invoices.refresh_drafts()
            elapsed = time.perf_counter() - started
            figures = {"invoices": count, "seconds": round(elapsed, 3),
                       "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024, 1)}
            if as_json:
                self.stdout.write(json.dumps({"rating": figures}))
            else:
                self.stdout.write(f"rating: {count} draft invoice(s) refreshed in "
                                  f"{elapsed:.2f} s")
