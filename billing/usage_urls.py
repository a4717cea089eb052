"""Tenant usage pages, mounted under ``subscriptions/<uuid:pk>/usage/`` (namespace
``usage``)."""

from django.urls import path

from billing import usage_views as views

app_name = "usage"

urlpatterns = [
    path("", views.UsageView.as_view(), name="subscription"),
]
