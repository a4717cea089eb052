"""Provider DR pages, mounted under ``admin/dr/`` (namespace ``provider-dr``, staff only)."""

from django.urls import path

from dr_addon import views

app_name = "provider-dr"

urlpatterns = [
    path("", views.ProviderProtectionListView.as_view(), name="protection_list"),
    path("subscriptions/<uuid:pk>/", views.ProviderDrStatusView.as_view(), name="status"),
    path("subscriptions/<uuid:pk>/test-failover/", views.ProviderTestFailoverView.as_view(),
         name="test_failover"),
    path("subscriptions/<uuid:pk>/failover/planned/",
         views.ProviderPlannedFailoverView.as_view(), name="planned_failover"),
    path("subscriptions/<uuid:pk>/failover/unplanned/",
         views.ProviderUnplannedFailoverView.as_view(), name="unplanned_failover"),
    path("subscriptions/<uuid:pk>/failback/", views.ProviderFailbackView.as_view(),
         name="failback"),
    path("subscriptions/<uuid:pk>/reports/<uuid:report_id>/",
         views.ProviderDrReportView.as_view(), name="report"),
    path("mappings/", views.ProviderMappingListView.as_view(), name="mapping_list"),
    path("mappings/<uuid:pk>/delete/", views.ProviderMappingDeleteView.as_view(),
         name="mapping_delete"),
]
