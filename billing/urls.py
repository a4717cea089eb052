"""Tenant billing pages: invoices (namespace-less, like the portal's own pages)."""

from django.urls import path

from billing import views

urlpatterns = [
    path("invoices/", views.InvoiceListView.as_view(), name="invoice_list"),
    path("invoices/<uuid:pk>/", views.InvoiceDetailView.as_view(), name="invoice_detail"),
    path("invoices/<uuid:pk>/csv/", views.InvoiceCsvView.as_view(), name="invoice_csv"),
    path("subscriptions/<uuid:pk>/burst/", views.BurstView.as_view(),
         name="subscription_burst"),
]
