"""URLs of the web UI: the tenant portal at / and the provider admin portal at /admin/
(which, with its login page, only the provider's face serves: ``base.faces``)."""

from django.urls import include, path

from plans import views as plans
from portal.web import views as web
from provisioning import views as provisioning
from provisioning.views import subscriptions
from provisioning.views import tasks as task_views
from tenants import account_views as account
from tenants import views as tenants

urlpatterns = [
    # Accounts
    path("signup/", tenants.SignUpView.as_view(), name="signup"),
    path("login/", account.LoginView.as_view(), name="login"),
    path("login/code/", account.LoginCodeView.as_view(), name="login_code"),
    path("logout/", account.LogoutView.as_view(), name="logout"),
    path("password/", account.PasswordChangeView.as_view(), name="password_change"),
    path("account/two-factor/", account.TwoFactorView.as_view(), name="two_factor"),
    path("account/two-factor/remove/", account.TwoFactorRemoveView.as_view(),
         name="two_factor_remove"),
    path("account/sessions/", account.SessionListView.as_view(), name="session_list"),
    path("account/sessions/end-all/", account.SessionsEndAllView.as_view(),
         name="session_end_all"),
    path("account/sessions/<uuid:pk>/end/", account.SessionEndView.as_view(),
         name="session_end"),
    path("invitations/<str:token>/", tenants.InvitationAcceptView.as_view(),
         name="invitation_accept"),
    # Tenant portal
    path("", web.DashboardView.as_view(), name="dashboard"),
    path("plans/", plans.PlanCatalogueView.as_view(), name="plan_list"),
    path("plans/<uuid:pk>/subscribe/", subscriptions.SubscribeView.as_view(), name="subscribe"),
    path("subscriptions/", subscriptions.SubscriptionListView.as_view(), name="subscription_list"),
    path("subscriptions/<uuid:pk>/", subscriptions.SubscriptionDetailView.as_view(),
         name="subscription_detail"),
    path("subscriptions/<uuid:pk>/retry/", subscriptions.SubscriptionRetryView.as_view(),
         name="subscription_retry"),
    path("subscriptions/<uuid:pk>/plan/", subscriptions.PlanChangeView.as_view(),
         name="subscription_plan"),
    path("subscriptions/<uuid:pk>/addons/", subscriptions.AddOnAttachView.as_view(),
         name="addon_attach"),
    path("subscriptions/<uuid:pk>/addons/<uuid:addon_id>/detach/",
         subscriptions.AddOnDetachView.as_view(), name="addon_detach"),
    path("subscriptions/<uuid:pk>/dr/", include("dr_addon.urls")),
    path("subscriptions/<uuid:pk>/usage/", include("billing.usage_urls")),
    path("subscriptions/<uuid:pk>/vms/new/", provisioning.VmCreateView.as_view(), name="vm_create"),
    path("subscriptions/<uuid:pk>/quota-preview/", provisioning.QuotaPreviewView.as_view(),
         name="quota_preview"),
    # Billing: invoices and a subscription's burst
    path("", include("billing.urls")),
    # Resources
    path("vms/", provisioning.VmListView.as_view(), name="vm_list"),
    path("vms/new/", provisioning.VmNewView.as_view(), name="vm_new"),
    path("vms/<uuid:pk>/", provisioning.VmDetailView.as_view(), name="vm_detail"),
    path("vms/<uuid:pk>/start/",
         provisioning.VmPowerView.as_view(action="start", confirm_label="Start"),
         name="vm_start"),
    path("vms/<uuid:pk>/stop/",
         provisioning.VmPowerView.as_view(action="stop", confirm_label="Stop"),
         name="vm_stop"),
    path("vms/<uuid:pk>/restart/",
         provisioning.VmPowerView.as_view(action="restart", confirm_label="Restart"),
         name="vm_restart"),
    path("vms/<uuid:pk>/resize/", provisioning.VmResizeView.as_view(), name="vm_resize"),
    path("vms/<uuid:pk>/delete/", provisioning.VmDeleteView.as_view(), name="vm_delete"),
    path("vms/<uuid:pk>/checkpoints/", provisioning.CheckpointCreateView.as_view(),
         name="checkpoint_create"),
    path("vms/<uuid:pk>/checkpoints/<uuid:checkpoint_id>/restore/",
         provisioning.CheckpointRestoreView.as_view(), name="checkpoint_restore"),
    path("vms/<uuid:pk>/checkpoints/<uuid:checkpoint_id>/delete/",
         provisioning.CheckpointDeleteView.as_view(), name="checkpoint_delete"),
    path("networks/", provisioning.NetworkListView.as_view(), name="network_list"),
    path("networks/<uuid:pk>/delete/", provisioning.NetworkDeleteView.as_view(),
         name="network_delete"),
    path("tasks/", task_views.TaskMenuView.as_view(), name="task_menu"),
    path("tasks/<slug:slug>/", task_views.TaskRunFormView.as_view(), name="task_run_form"),
    path("task-runs/", task_views.TaskRunListView.as_view(), name="task_run_list"),
    path("task-runs/<uuid:pk>/", task_views.TaskRunDetailView.as_view(), name="task_run_detail"),
    path("task-runs/<uuid:pk>/approve/", task_views.TaskRunApproveView.as_view(),
         name="task_run_approve"),
    path("task-runs/<uuid:pk>/reject/", task_views.TaskRunApproveView.as_view(approve=False),
         name="task_run_reject"),
    path("jobs/", provisioning.JobListView.as_view(), name="job_list"),
    path("jobs/<uuid:pk>/", provisioning.JobDetailView.as_view(), name="job_detail"),
    # Organisation
    path("members/", tenants.MemberListView.as_view(), name="member_list"),
    path("members/<int:pk>/role/", tenants.MemberRoleView.as_view(), name="member_role"),
    path("members/<int:pk>/remove/", tenants.MemberRemoveView.as_view(), name="member_remove"),
    path("tokens/", tenants.TokenListView.as_view(), name="token_list"),
    path("tokens/<uuid:pk>/revoke/", tenants.TokenRevokeView.as_view(), name="token_revoke"),
    path("activity/", tenants.ActivityView.as_view(), name="activity"),
    # Provider portal
    path("admin/dr/", include("dr_addon.provider_urls")),
    path("admin/billing/", include("billing.provider_urls")),
    path("admin/", include("portal.web.provider_urls")),
]
