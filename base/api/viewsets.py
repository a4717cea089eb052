"""Base viewsets: tenant scoping and role checks are applied here, once.

Every tenant-facing viewset derives from ``TenantViewSet`` and declares which
permission a write needs (``write_permission``); its queryset is restricted to the
caller's tenant by the model's ``restrict(tenant)`` (``base.scoping``). Objects of another
tenant are simply not in the queryset, so they answer 404, never 403 (an invariant:
tenants never learn of each other).
"""

from rest_framework import mixins, permissions, viewsets

from base.api.idempotency import IdempotentMixin
from base.scoping import current_tenant

__all__ = ["CatalogViewSet", "IsProvider", "ProviderViewSet", "TenantRolePermission",
           "TenantViewSet"]


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
        user = request.user
        if not (user.is_authenticated and user.has_perm("portal.provider", None)):
            return False
        if request.auth is None:
            # A browser session: staff reach the provider's side only after two-factor
            # authentication (a staff token is issued only with a code, tenants.api).
            self.message = "Provider staff must pass two-factor authentication first."
            return getattr(user, "is_verified", lambda: False)()
        return True


class TenantViewSet(IdempotentMixin, viewsets.GenericViewSet):
    """Base of every tenant-facing viewset."""

    write_permission = "provisioning.operate"
    permission_classes = [TenantRolePermission]

    @property
    def tenant(self):
        return current_tenant(self.request.user)

    def get_queryset(self):
        return super().get_queryset().restrict(self.tenant)


class ProviderViewSet(IdempotentMixin, viewsets.GenericViewSet):
    """Base of every ``/api/v1/admin/`` viewset: staff only, 403 for anyone else."""

    permission_classes = [IsProvider]


class CatalogViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    ProviderViewSet,
):
    """Provider CRUD whose writes go through one ``save`` service."""

    def save(self, instance, serializer):
        raise NotImplementedError

    def perform_create(self, serializer):
        serializer.instance = self.save(None, serializer)

    def perform_update(self, serializer):
        serializer.instance = self.save(serializer.instance, serializer)
