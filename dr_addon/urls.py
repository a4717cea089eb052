"""Tenant DR pages, mounted under ``subscriptions/<uuid:pk>/dr/`` (namespace ``dr``)."""

from django.urls import path

from dr_addon import views

app_name = "dr"

urlpatterns = [
    path("", views.DrStatusView.as_view(), name="status"),
    path("test-failover/", views.TestFailoverView.as_view(), name="test_failover"),
    path("reports/<uuid:report_id>/", views.DrReportView.as_view(), name="report"),
]
