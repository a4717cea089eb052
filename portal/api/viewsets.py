"""Base viewsets: tenant scoping and role checks are applied here, once.

Every tenant-facing viewset derives from ``TenantViewSet`` and declares which
relation leads to the tenant (``tenant_field``) and which permission a write needs
(``write_permission``). Objects of another tenant are simply not in the queryset,
so they answer 404, never 403 (an invariant: tenants never learn of each other).
"""

from rest_framework import permissions, viewsets

from portal.api.idempotency import IdempotentMixin

__all__ = ["IsProvider", "ProviderViewSet", "TenantRolePermission", "TenantViewSet",
           "current_tenant"]


def current_tenant(user):
    membership = getattr(user, "membership", None) if user.is_authenticated else None
    return membership.tenant if membership else None


class TenantRolePermission(permissions.BasePermission):
    message = "Your role in this organisation does not allow this."

    def has_permission(self, request, view) -> bool:
        if not request.user.is_authenticated:
            return False
        tenant = current_tenant(request.user)
        if tenant is None:
            self.message = "You are not a member of any organisation."
            return False
        if request.method in permissions.SAFE_METHODS:
            return request.user.has_perm("tenants.view_tenant", tenant)
        return request.user.has_perm(view.write_permission, tenant)


class IsProvider(permissions.BasePermission):
    message = "Only the provider's staff may use this endpoint."

    def has_permission(self, request, view) -> bool:
        return request.user.is_authenticated and request.user.has_perm("portal.provider", None)


class TenantViewSet(IdempotentMixin, viewsets.GenericViewSet):
    """Base of every tenant-facing viewset."""

    tenant_field = "tenant"
    write_permission = "provisioning.operate"
    permission_classes = [TenantRolePermission]

    @property
    def tenant(self):
        return current_tenant(self.request.user)

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.tenant is None:
            return queryset.none()
        return queryset.filter(**{self.tenant_field: self.tenant})


class ProviderViewSet(IdempotentMixin, viewsets.GenericViewSet):
    """Base of every ``/api/v1/admin/`` viewset: staff only, 403 for anyone else."""

    permission_classes = [IsProvider]
