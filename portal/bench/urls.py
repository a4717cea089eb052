"""Benchmark endpoints, mounted under ``/api/bench/`` only in a process started with
``BUFFET_BENCH_ENDPOINTS=1`` (the web server ``manage.py bench`` starts), so a
production deployment never exposes them."""

import os

from django.urls import path

from portal.bench import views

ENABLED = os.environ.get("BUFFET_BENCH_ENDPOINTS", "").strip().lower() in {"1", "true", "yes"}

urlpatterns = [
    path("baseline/", views.BaselineView.as_view(), name="bench-baseline"),
] if ENABLED else []
