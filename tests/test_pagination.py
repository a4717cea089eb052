"""Counts of big lists: exact up to the limit, an estimate above it, and pages whose
``next`` is right whatever the estimate."""

import pytest
from django.core.paginator import EmptyPage, PageNotAnInteger
from django.db import connection
from django.test.utils import CaptureQueriesContext

from base.pagination import BoundedCountPaginator
from tenants.models import Tenant
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


class Small(BoundedCountPaginator):
    exact_limit = 3


def tenants():
    return Tenant.objects.order_by("name", "pk")


@pytest.fixture
def seven(db):
    return [TenantFactory(name=f"t{i}") for i in range(7)]


def test_a_list_within_the_limit_is_counted_exactly(seven):
    paginator = BoundedCountPaginator(tenants(), 2)
    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 7
    assert len(queries.captured_queries) == 1
    assert not paginator.is_estimated
    assert paginator.num_pages == 4


def test_above_the_limit_the_count_is_never_below_the_limit_and_pages_end_where_rows_do(
        seven, postgres):
    with CaptureQueriesContext(connection) as queries:
        paginator = Small(tenants(), 3)
        count = paginator.count
    assert paginator.is_estimated
    assert count >= 4
    # one statement, the same as within the limit: the count stopped at the limit (it
    # read four rows, not the table), and the planner's estimate came with it
    assert len(queries.captured_queries) == 1
    assert "LIMIT 4" in queries.captured_queries[0]["sql"]
    first, third = paginator.page(1), paginator.page(3)
    assert [t.name for t in first] == ["t0", "t1", "t2"] and first.has_next()
    assert not first.has_previous()
    assert [t.name for t in paginator.page(2)] == ["t3", "t4", "t5"]
    assert [t.name for t in third] == ["t6"]
    assert not third.has_next() and third.has_previous()
    assert third.start_index() == 7 and third.end_index() == 7
    with pytest.raises(EmptyPage):
        third.next_page_number()
    with pytest.raises(EmptyPage):
        paginator.page(4)
    with pytest.raises(EmptyPage):
        paginator.page(0)
    with pytest.raises(PageNotAnInteger):
        paginator.page("two")


def test_a_filtered_list_below_the_limit_is_exact_even_in_a_big_table(seven, postgres):
    paginator = Small(tenants().filter(name__in=["t1", "t2"]), 3)
    assert paginator.count == 2 and not paginator.is_estimated


def test_a_filter_no_row_can_meet_counts_none(seven, postgres):
    paginator = Small(tenants().filter(pk__in=[]), 3)
    assert paginator.count == 0 and list(paginator.page(1)) == []


class _Request:
    """What the API's pagination reads of a request."""

    def __init__(self, **query_params):
        self.query_params = query_params

    def build_absolute_uri(self):
        return "http://testserver/x/"


def _api_pages(monkeypatch, paginator_class, page_size: int):
    """The API's pagination, on ``paginator_class``, ``page_size`` rows a page."""
    from base.api import pagination

    monkeypatch.setattr(pagination.Pagination, "django_paginator_class", paginator_class)
    page = pagination.Pagination()
    page.page_size = page_size
    return page


def test_the_api_follows_next_to_the_last_row_of_an_estimated_list(seven, postgres,
                                                                   monkeypatch):
    page = _api_pages(monkeypatch, Small, 3)
    request = _Request()
    seen, number = [], 1
    while True:
        request.query_params = {"page": str(number)}
        rows = page.paginate_queryset(tenants(), request)
        seen += [t.name for t in rows]
        answer = page.get_paginated_response([]).data
        assert answer["count"] >= 4
        if answer["next"] is None:
            break
        number += 1
    assert seen == [f"t{i}" for i in range(7)]


def test_an_annotated_list_is_counted_by_its_rows(seven, postgres):
    from django.db.models import Count

    listed = tenants().annotate(members=Count("memberships"))
    assert BoundedCountPaginator(listed, 2).count == 7
    assert Small(listed, 2).count >= 4


class Overestimated(Small):
    """The planner's estimate far above the rows (a table not analysed since it shrank)."""
    count = 100


def test_the_last_page_of_an_estimated_list_is_the_page_of_its_last_row(seven, postgres):
    # given a list whose estimate puts its last page past its rows (34 pages of 3)
    paginator = Overestimated(tenants(), 3)
    assert paginator.is_estimated and paginator.num_pages == 34
    # when the last page is asked for, then it is counted exactly: the page of t6
    number = paginator.last_page_number()
    assert number == 3 and [t.name for t in paginator.page(number)] == ["t6"]


def test_the_api_answers_page_last_of_an_estimated_list_with_its_last_rows(seven, postgres,
                                                                          monkeypatch):
    page = _api_pages(monkeypatch, Overestimated, 3)
    rows = page.paginate_queryset(tenants(), _Request(page="last"))
    assert [t.name for t in rows] == ["t6"]
    answer = page.get_paginated_response([]).data
    assert answer["next"] is None and answer["previous"] is not None


def test_the_portal_shows_page_last_of_an_estimated_list_with_its_last_rows(seven, staff,
                                                                           postgres,
                                                                           monkeypatch):
    from conftest import web_login
    from provisioning.views.tenants import ProviderTenantListView
    from tenants.models import User

    # given the provider's tenant list, estimated past its rows, 3 a page
    monkeypatch.setattr(ProviderTenantListView, "paginator_class", Overestimated)
    monkeypatch.setattr(ProviderTenantListView, "paginate_by", 3)
    provider = web_login(User.objects.get(email=staff.email))
    # when the provider asks for the last page, then it is there, not a 404
    response = provider.get("/admin/tenants/?page=last")
    assert response.status_code == 200
    page = response.context["page_obj"]
    assert page.number == 3 and len(page.object_list) == 1 and not page.has_next()
