"""Who the caller is a member of, and the querysets they may see: scoping applied once.

A tenant never sees, changes or learns the existence of another tenant's objects
(DESIGN.md, invariants): every tenant-facing queryset goes through ``restrict(tenant)``,
called by the API's ``TenantViewSet`` and the web UI's ``TenantPortalMixin`` alike, so
another tenant's object is simply not there and answers 404, never 403.

The base imports no app: a user model is expected to offer ``membership`` (with its
``tenant``), which ``tenants.models.User`` does.
"""

from django.db import models

__all__ = ["RestrictedQuerySet", "current_membership", "current_tenant"]


def current_membership(user):
    """The caller's membership (with its tenant), or None for anonymous and staff callers."""
    if user is None or not user.is_authenticated:
        return None
    return getattr(user, "membership", None)


def current_tenant(user):
    membership = current_membership(user)
    return membership.tenant if membership else None


class RestrictedQuerySet(models.QuerySet):
    """A queryset that knows the path from its model to the owning tenant.

    Models declare it as ``objects = RestrictedQuerySet.as_manager()`` and name the path
    in ``tenant_path`` (a class attribute: ``"tenant"``, ``"subscription__tenant"``).
    """

    def restrict(self, tenant) -> "RestrictedQuerySet":
        """Only what ``tenant`` owns; nothing at all without a tenant."""
        if tenant is None:
            return self.none()
        return self.filter(**{self.model.tenant_path: tenant})
