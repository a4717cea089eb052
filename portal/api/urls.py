"""Every API route, provider (``/api/v1/admin/``) and tenant, from the apps' viewsets."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from billing.api import invoices, rating
from billing.api import views as billing
from dr_addon.api import views as dr
from fabric.api import views as fabric
from plans.api import views as plans
from provisioning.api import resources, subscriptions
from provisioning.api import tasks as task_menu
from provisioning.api import views as provisioning
from tenants.api import audit
from tenants.api import views as tenants

admin_router = DefaultRouter()
admin_router.register("stamps", fabric.StampViewSet, basename="admin-stamp")
admin_router.register("clouds", fabric.CloudViewSet, basename="admin-cloud")
admin_router.register("templates", fabric.TemplateViewSet, basename="admin-template")
# Plans and add-ons with their prices' history (billing sits above plans).
admin_router.register("plans", rating.PricedPlanViewSet, basename="admin-plan")
admin_router.register("addons", rating.PricedAddOnViewSet, basename="admin-addon")
admin_router.register("tenants", plans.ProviderTenantViewSet, basename="admin-tenant")
admin_router.register("subscriptions", subscriptions.ProviderSubscriptionViewSet,
                      basename="admin-subscription")
admin_router.register("jobs", provisioning.ProviderJobViewSet, basename="admin-job")
admin_router.register("tasks", task_menu.ProviderTaskViewSet, basename="admin-task")
admin_router.register("task-runs", task_menu.ProviderTaskRunViewSet, basename="admin-task-run")
admin_router.register("network-mappings", dr.NetworkMappingViewSet,
                      basename="admin-network-mapping")
admin_router.register("audit", audit.ProviderAuditViewSet, basename="admin-audit")
admin_router.register("invoices", invoices.ProviderInvoiceViewSet, basename="admin-invoice")

tenant_dr = dr.DrViewSet.as_view({"get": "retrieve"})
tenant_drill = dr.DrViewSet.as_view({"post": "test_failover"})
admin_dr = dr.ProviderDrViewSet.as_view({"get": "retrieve"})
admin_drill = dr.ProviderDrViewSet.as_view({"post": "test_failover"})
admin_failover = dr.ProviderDrViewSet.as_view({"post": "failover"})
admin_failback = dr.ProviderDrViewSet.as_view({"post": "failback"})

router = DefaultRouter()
router.register("plans", plans.PublicPlanViewSet, basename="plan")
router.register("subscriptions", subscriptions.SubscriptionViewSet, basename="subscription")
router.register("tenant/members", tenants.MemberViewSet, basename="member")
router.register("auth/tokens", tenants.OwnTokenViewSet, basename="own-token")
router.register("jobs", provisioning.JobViewSet, basename="job")
router.register("networks", resources.NetworkViewSet, basename="network")
router.register("vms", resources.VmViewSet, basename="vm")
router.register("templates", resources.TemplateViewSet, basename="template")
router.register("activity", audit.ActivityViewSet, basename="activity")
router.register("invoices", invoices.InvoiceViewSet, basename="invoice")
router.register("tasks", task_menu.TaskViewSet, basename="task")
router.register("task-runs", task_menu.TaskRunViewSet, basename="task-run")

dr_urls = [
    path("subscriptions/<uuid:subscription_pk>/dr/", tenant_dr, name="dr"),
    path("subscriptions/<uuid:subscription_pk>/dr/test-failover/", tenant_drill,
         name="dr-test-failover"),
    path("admin/subscriptions/<uuid:subscription_pk>/dr/", admin_dr, name="admin-dr"),
    path("admin/subscriptions/<uuid:subscription_pk>/dr/test-failover/", admin_drill,
         name="admin-dr-test-failover"),
    path("admin/subscriptions/<uuid:subscription_pk>/dr/failover/", admin_failover,
         name="admin-dr-failover"),
    path("admin/subscriptions/<uuid:subscription_pk>/dr/failback/", admin_failback,
         name="admin-dr-failback"),
]

usage_urls = [
    path("subscriptions/<uuid:subscription_pk>/usage/",
         billing.SubscriptionUsageViewSet.as_view({"get": "retrieve"}), name="usage"),
    path("admin/usage/", billing.ProviderUsageViewSet.as_view({"get": "report"}),
         name="admin-usage"),
]

billing_urls = [
    path("admin/rating/reprocess/", rating.ReprocessViewSet.as_view({"post": "create"}),
         name="admin-rating-reprocess"),
]

urlpatterns = [
    *dr_urls,
    *usage_urls,
    *billing_urls,
    path("auth/signup/", tenants.SignUpView.as_view(), name="signup"),
    path("auth/token/", tenants.TokenView.as_view(), name="token"),
    path("auth/invitations/accept/", tenants.InvitationAcceptView.as_view(),
         name="invitation-accept"),
    path("tenant/", tenants.TenantView.as_view(), name="tenant"),
    path("admin/", include(admin_router.urls)),
    path("", include(router.urls)),
]
