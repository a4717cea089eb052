"""Pages of lists that never count more rows than a page needs.

A list's count is exact up to ``EXACT_COUNT_LIMIT`` rows: it is counted over a subquery
that stops there, so its cost does not grow with a table (the provider's jobs grow with
every change every tenant makes). Above that, on PostgreSQL, the count is the planner's
estimate of the query's rows, never below the limit; pages then learn whether there is
a next one by reading one row more than they show, so ``next`` and ``previous`` stay
exact whatever the estimate; the last page (``?page=last``) is found by counting
exactly, the one request that pays for the count it asks for. On other databases the
count is always exact.
"""

from functools import cached_property
from math import ceil

from django.core.exceptions import EmptyResultSet
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections

__all__ = ["EXACT_COUNT_LIMIT", "BoundedCountPaginator"]

EXACT_COUNT_LIMIT = 10_000


class BoundedCountPaginator(Paginator):
    exact_limit = EXACT_COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not hasattr(queryset, "query") or connections[queryset.db].vendor != "postgresql":
            return super().count
        # One statement whatever the size: the count stops after the limit, and only a
        # count that reached it asks the planner (``buffet_row_estimate``, a migration).
        listed = queryset.order_by()
        bounded = listed if listed.query.annotations or listed.query.distinct \
            else listed.values("pk")  # the rows' ids are enough to count them
        bounded = bounded[: self.exact_limit + 1].query
        try:
            inner, params = bounded.sql_with_params()
        except EmptyResultSet:  # a filter no row can meet (``pk__in=[]``)
            return 0
        with connections[queryset.db].cursor() as cursor:
            full = cursor.mogrify(*listed.query.sql_with_params()).decode()
            # the ORM's own SQL around ours; every value is a parameter
            sql = ("SELECT n, CASE WHEN n > %s THEN buffet_row_estimate(%s) END "  # noqa: S608
                   f"FROM (SELECT COUNT(*) AS n FROM ({inner}) AS page) AS counted")
            cursor.execute(sql, [self.exact_limit, full, *params])
            counted, estimate = cursor.fetchone()
        if counted <= self.exact_limit:
            return counted
        return max(self.exact_limit + 1, estimate or 0)

    @cached_property
    def is_estimated(self) -> bool:
        return self.count > self.exact_limit

    def last_page_number(self) -> int:
        """The number of the page with the last row: ``num_pages`` of an estimate may lie
        past the rows or short of them, so an estimated list is counted exactly here."""
        if not self.is_estimated:
            return self.num_pages
        return max(1, ceil(self.object_list.count() / self.per_page))

    def validate_number(self, number):
        if not self.is_estimated:
            return super().validate_number(number)
        # Past the estimate a page may still have rows: ``page`` says when it has none.
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from exc
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number

    def page(self, number):
        if not self.is_estimated:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom:bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        return _EstimatedPage(rows[: self.per_page], number, self,
                              has_next=len(rows) > self.per_page)


class _EstimatedPage(Page):
    def __init__(self, object_list, number, paginator, *, has_next: bool):
        super().__init__(object_list, number, paginator)
        self._has_next = has_next

    def has_next(self) -> bool:
        return self._has_next

    def next_page_number(self) -> int:
        if not self._has_next:
            raise EmptyPage(self.paginator.error_messages["no_results"])
        return self.number + 1

    def end_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + len(self.object_list)
