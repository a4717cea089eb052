"""The URLs of the whole portal: the API and its schema, the two web portals, health."""

from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal import health, metrics

handler404 = "base.api.problems.handler404"
handler500 = "base.api.problems.handler500"

urlpatterns = [
    path("api/v1/", include("portal.api.urls")),
    path("api/bench/", include("portal.bench.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    # Swagger UI sets style elements of its own, which only this page allows.
    path("api/docs/", csp_update({"style-src": ["'unsafe-inline'"]})(
        SpectacularSwaggerSplitView.as_view(url_name="schema")), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("django-admin/", admin.site.urls),
    path("", include("portal.web.urls")),
]
