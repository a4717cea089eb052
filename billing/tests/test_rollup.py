"""Usage by the hour: whole hours from the sums, a window's partial hours from the records."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import rollup
from billing.models import UsageHour
from billing.tests.factories import usage
from plans.tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def subscription():
    subscription = SubscriptionFactory()
    # 2 vCPUs from 10:10 to 11:29 (80 minutes over two hours)
    usage(subscription, "vcpus", 2, start=T0 + 10 * MINUTE, minutes=80)
    return subscription


def test_an_hour_is_the_sum_of_its_minutes(subscription):
    hours = dict(UsageHour.objects.filter(subscription=subscription)
                 .values_list("hour", "quantity"))
    assert hours == {T0: Decimal(2 * 50), T0 + rollup.HOUR: Decimal(2 * 30)}


@pytest.mark.parametrize(("start", "end", "expected"), [
    (T0, T0 + 2 * rollup.HOUR, 160),                       # whole hours only
    (T0 + 17 * MINUTE, T0 + 2 * rollup.HOUR, 2 * 73),       # a partial first hour
    (T0, T0 + 75 * MINUTE, 2 * 65),                         # a partial last hour
    (T0 + 20 * MINUTE, T0 + 30 * MINUTE, 2 * 10),           # inside one hour
    (T0 + 30 * MINUTE, T0 + 30 * MINUTE, None),             # empty
])
def test_a_window_reads_its_partial_hours_from_the_records(subscription, start, end,
                                                           expected):
    sums = rollup.sums(start, end, now=NOW, subscription=subscription)
    assert sums.get("vcpus") == (Decimal(expected) if expected else None)


def test_a_window_that_reaches_now_reads_the_running_hour_whole(subscription):
    # at 11:40 nothing is recorded after 11:39, so the hour 11:00 is read as it stands
    now = T0 + 100 * MINUTE
    with CaptureQueriesContext(connection) as queries:
        sums = rollup.sums(T0, now, now=now, subscription=subscription)
    assert sums == {"vcpus": Decimal(160)}
    assert len(queries) == 1
    assert "billing_usagerecord" not in queries[0]["sql"]


def test_the_series_adds_edges_and_hours_per_period(subscription):
    series = rollup.series(T0 + 17 * MINUTE, T0 + 2 * rollup.HOUR, "hour", now=NOW,
                           subscription=subscription)
    assert series == [{"start": T0, "meter": "vcpus", "quantity": Decimal(2 * 43)},
                      {"start": T0 + rollup.HOUR, "meter": "vcpus", "quantity": Decimal(60)}]
    days = rollup.series(T0 - 10 * rollup.HOUR, NOW, "day", now=NOW,
                         subscription=subscription)
    assert days == [{"start": T0.replace(hour=0), "meter": "vcpus", "quantity": Decimal(160)}]


def test_rebuild_sums_an_hour_again_from_its_records(subscription):
    UsageHour.objects.filter(subscription=subscription).update(quantity=1)
    assert rollup.rebuild(T0, T0 + 2 * rollup.HOUR, subscription=subscription) == 2
    assert rollup.sums(T0, T0 + 2 * rollup.HOUR, now=NOW,
                       subscription=subscription) == {"vcpus": Decimal(160)}
