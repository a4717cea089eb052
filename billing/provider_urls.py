"""Provider billing pages, under ``admin/billing/`` (namespace ``provider-billing``)."""

from django.urls import path

from billing import views

app_name = "provider-billing"

urlpatterns = [
    path("", views.ProviderInvoiceListView.as_view(), name="invoice_list"),
    path("issue/", views.ProviderIssueView.as_view(), name="issue"),
    path("reprocess/", views.ProviderReprocessView.as_view(), name="reprocess"),
]
