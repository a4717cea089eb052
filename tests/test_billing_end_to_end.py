"""Burst by the minute from the stamp to the invoice, in real processes: a tenant opts in,
a VM above the quota runs on a real stampsim (its clock set by the test), a real worker
carries out the jobs, metering reads the stamp's history and the draft invoice bills the
started minutes above the quota."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from billing import invoices, metering
from billing.models import MeterCursor, UsageRecord
from conftest import unique
from fabric.models import Stamp
from tests.test_runbooks_integration import commission_job, subscribe, wait_job

pytestmark = pytest.mark.worker

BURST = {"limits": {"vcpus": 1, "memory_mb": 1024},
         "price_per_minute": {"vcpus": "0.021000", "memory_mb": "0.000020"}}


def set_clock(sim, moment):
    status, body = sim.request("POST", "/v1/admin/clock", {"now": moment.isoformat()})
    assert status == 200 and body["frozen"], body


def test_a_burst_vm_from_10_00_30_to_10_03_10_is_billed_three_minutes_above_the_quota(
        staff, stampsims, workers, signup, settings):
    # given a 1 vCPU / 1 GB plan that offers burst, on a real stampsim and a real worker
    settings.BUFFET_JOB_LEASE_SECONDS = 3
    sim = stampsims("burst")
    post = lambda path, body: staff.post(f"/api/v1/admin/{path}/", body,  # noqa: E731
                                         format="json").json()
    stamp = post("stamps", {"name": sim.name, "region": "west", "driver": "simulated",
                            "endpoint": sim.url})
    cloud = post("clouds", {"name": unique("cloud-"), "stamp": stamp["id"],
                            "capacity": {"vcpus": 64, "memory_mb": 131072,
                                         "storage_gb": 2000, "vms": 50},
                            "default_network_cidr": "10.1.0.0/24",
                            "external_pool_cidr": "192.0.2.0/28"})
    template = post("templates", {"name": "debian", "os": "Debian", "image": "deb",
                                  "cloud": cloud["id"]})
    plan = post("plans", {"name": unique("Burst "), "state": "public", "cloud": cloud["id"],
                          "templates": [template["id"]], "price_monthly": "0.00",
                          "quotas": {"vcpus": 1, "memory_mb": 1024, "storage_gb": 50,
                                     "vms": 2, "networks": 1, "snapshots": 1},
                          "burst": BURST})
    worker = workers([f"stamp.{sim.name}"])
    owner = signup()
    subscription = subscribe(owner, plan)
    assert wait_job(owner, commission_job(owner, subscription["id"])["id"],
                    worker=worker)["state"] == "succeeded"
    sid = subscription["id"]
    body = {"subscription": sid, "name": "big", "template": template["id"], "vcpus": 2,
            "memory_mb": 2048, "disk_gb": 10}
    # without opting in, the VM is refused as before
    refused = owner.post("/api/v1/vms/", body, format="json")
    assert refused.status_code == 409 and refused.json()["type"].endswith("/quota-exceeded")
    opted = owner.patch(f"/api/v1/subscriptions/{sid}/",
                        {"burst": {"enabled": True, "monthly_cap": "5.00"}}, format="json")
    assert opted.status_code == 200, opted.content

    # when a 2 vCPU / 2 GB VM runs on the stamp from 10:00:30 to 10:03:10
    ten = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    set_clock(sim, ten + timedelta(seconds=30))
    created = owner.post("/api/v1/vms/", body, format="json")
    assert created.status_code == 202, created.content
    assert wait_job(owner, created.json()["job"], worker=worker)["state"] == "succeeded"
    set_clock(sim, ten + timedelta(minutes=3, seconds=10))
    deleted = owner.delete(f"/api/v1/vms/{created.json()['id']}/")
    assert deleted.status_code == 202, deleted.content
    assert wait_job(owner, deleted.json()["job"], worker=worker)["state"] == "succeeded"
    # and metering collects 10:00 to 10:05 from the stamp, then the draft is refreshed
    db_stamp = Stamp.objects.get(pk=stamp["id"])
    MeterCursor.objects.update_or_create(stamp=db_stamp, defaults={"collected_until": ten})
    with time_machine.travel(ten + timedelta(minutes=5), tick=False):
        report = metering.collect(db_stamp)
        assert (report.minutes, report.backfilled, report.missing) == (5, 4, False)
        invoices.refresh_drafts()
        usage = owner.get(f"/api/v1/subscriptions/{sid}/usage/").json()
        drafts = owner.get("/api/v1/invoices/").json()["results"]

    # then three started minutes are metered: 2 vCPUs and 2 GB each, 1 and 1024 above quota
    rows = UsageRecord.objects.filter(subscription_id=sid)
    assert sorted({r.minute - ten for r in rows}) == [timedelta(minutes=m) for m in range(3)]
    meters = {m["meter"]: m for m in usage["meters"]}
    assert Decimal(meters["vcpus"]["quantity"]) == 6
    assert Decimal(meters["burst.vcpus"]["quantity"]) == 3
    assert Decimal(meters["burst.memory_mb"]["quantity"]) == 3 * 1024
    # and the draft bills them at the burst prices, each line rounded to the cent
    (draft,) = [d for d in drafts if d["state"] == "draft"]
    lines = {line["meter"]: line for line in draft["lines"] if line["subscription"] == sid}
    billed = {meter: tuple(Decimal(lines[meter][f]) for f in ("quantity", "unit_price", "amount"))
              for meter in ("burst.vcpus", "burst.memory_mb")}
    assert billed == {"burst.vcpus": (3, Decimal("0.021"), Decimal("0.06")),
                      "burst.memory_mb": (3072, Decimal("0.00002"), Decimal("0.06"))}
    assert Decimal(draft["total"]) == sum(Decimal(line["amount"]) for line in draft["lines"])
    spent = owner.get(f"/api/v1/subscriptions/{sid}/").json()["burst"]["spent"]
    assert spent == "0.12"
