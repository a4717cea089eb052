"""Prometheus metrics of the web tier, served at ``/metrics``."""

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

__all__ = ["MetricsMiddleware", "metrics_view"]

REQUESTS = Counter("buffet_http_requests_total", "HTTP requests", ["method", "status"])
LATENCY = Histogram("buffet_http_request_seconds", "HTTP request latency", ["method"])


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        LATENCY.labels(request.method).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response


def metrics_view(request):
    from django.http import HttpResponse

    from portal.health import collect_gauges

    collect_gauges()
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
