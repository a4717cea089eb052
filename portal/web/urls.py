"""URLs of the web UI: the tenant portal at / and the provider admin portal at /admin/."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from plans import views as plans
from portal.web import views as web
from tenants import views as tenants

urlpatterns = [
    # Accounts
    path("signup/", tenants.SignUpView.as_view(), name="signup"),
    path("login/", tenants.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", tenants.PasswordChangeView.as_view(), name="password_change"),
    # Tenant portal
    path("", web.DashboardView.as_view(), name="dashboard"),
    path("plans/", plans.PlanCatalogueView.as_view(), name="plan_list"),
    path("plans/<uuid:pk>/subscribe/", plans.SubscribeView.as_view(), name="subscribe"),
    path("subscriptions/", plans.SubscriptionListView.as_view(), name="subscription_list"),
    path("subscriptions/<uuid:pk>/", plans.SubscriptionDetailView.as_view(),
         name="subscription_detail"),
    path("subscriptions/<uuid:pk>/addons/", plans.AddOnAttachView.as_view(),
         name="addon_attach"),
    path("subscriptions/<uuid:pk>/addons/<uuid:addon_id>/detach/",
         plans.AddOnDetachView.as_view(), name="addon_detach"),
    path("members/", tenants.MemberListView.as_view(), name="member_list"),
    path("members/<int:pk>/role/", tenants.MemberRoleView.as_view(), name="member_role"),
    path("members/<int:pk>/remove/", tenants.MemberRemoveView.as_view(), name="member_remove"),
    path("tokens/", tenants.TokenListView.as_view(), name="token_list"),
    path("tokens/<uuid:pk>/revoke/", tenants.TokenRevokeView.as_view(), name="token_revoke"),
    path("activity/", tenants.ActivityView.as_view(), name="activity"),
    # Provider portal
    path("admin/", include("portal.web.provider_urls")),
]
