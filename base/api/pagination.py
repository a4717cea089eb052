"""The one pagination of every list: ``count/next/previous/results``, ``?page_size=`` up to 500."""

from rest_framework.pagination import PageNumberPagination

from base.pagination import EXACT_COUNT_LIMIT, BoundedCountPaginator


class Pagination(PageNumberPagination):
    django_paginator_class = BoundedCountPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_number(self, request, paginator):
        number = request.query_params.get(self.page_query_param) or 1
        if number in self.last_page_strings:
            return paginator.last_page_number()
        return number

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count"]["description"] = (
            f"Exact up to {EXACT_COUNT_LIMIT:,} rows; above, an estimate. `next` is exact.")
        return response
