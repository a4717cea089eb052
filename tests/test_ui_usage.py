"""The tenant's usage page: a line per meter by day, and cost to date."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing import rollup
from billing.models import UsageRecord
from conftest import web_login
from fabric.models import Stamp
from tenants.models import User

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


def test_the_tenant_sees_its_usage_and_another_tenant_does_not(catalog, signup):
    # given a subscription with two days of vCPU usage
    owner = signup()
    subscription = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "prod"}, format="json").json()
    stamp = Stamp.objects.get(pk=catalog["stamp_a"]["id"])
    UsageRecord.objects.bulk_create(
        [UsageRecord(subscription_id=subscription["id"], resource_type="vm", resource_id="v",
                     meter="vcpus", minute=NOW - timedelta(days=d, minutes=5), quantity=2,
                     stamp=stamp) for d in (0, 1)])
    rollup.rebuild(NOW - timedelta(days=2), NOW)  # as the collector keeps them
    url = f"/subscriptions/{subscription['id']}/usage/"
    # when its owner opens the usage page
    page = web_login(User.objects.get(email=owner.email)).get(url)
    # then it shows a line for the meter and the total to date
    assert page.status_code == 200
    html = page.content.decode()
    assert "<polyline" in html and "vcpus" in html and "Cost to date" in html
    # and a bad window falls back to the running month with a warning
    html = web_login(User.objects.get(email=owner.email)).get(url, {"to": "x"}).content.decode()
    assert "That window is not valid" in html
    # and another tenant gets 404
    other = signup()
    assert web_login(User.objects.get(email=other.email)).get(url).status_code == 404
