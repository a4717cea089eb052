"""Django's data admin (``/django-admin/``), held to the provider portal's rules: staff
who passed two-factor authentication, logged in through the provider's login page
(which counts failures and asks for the code); never a login form of its own."""

from urllib.parse import urlencode

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.shortcuts import redirect
from django.urls import reverse

__all__ = ["ProviderAdminConfig", "ProviderAdminSite"]


class ProviderAdminSite(AdminSite):
    """The default admin site, for verified staff only."""

    site_header = "Buffet data admin"

    def has_permission(self, request):
        user = request.user
        return (user.is_active and user.is_staff
                and getattr(user, "is_verified", lambda: False)())

    def login(self, request, extra_context=None):
        next_url = request.GET.get("next") or reverse("admin:index")
        return redirect(f"{reverse('provider:login')}?{urlencode({'next': next_url})}")


class ProviderAdminConfig(AdminConfig):
    default_site = "portal.admin_site.ProviderAdminSite"
