"""URLs of the provider admin portal, mounted at /admin/ (staff only)."""

from django.urls import path

from fabric import views as fabric
from plans import views as plans
from portal.web import views as web
from provisioning import views as provisioning
from provisioning.views import subscriptions
from provisioning.views import tasks as task_views
from provisioning.views import tenants as provider_tenants
from tenants import account_views as account
from tenants import views as tenancy

app_name = "provider"

urlpatterns = [
    path("", web.ProviderOverviewView.as_view(), name="overview"),
    path("login/", account.LoginView.as_view(provider=True), name="login"),
    path("lockouts/", account.ProviderLockoutListView.as_view(), name="lockout_list"),
    path("lockouts/unlock/", account.ProviderUnlockView.as_view(), name="unlock"),
    path("stamps/", fabric.StampListView.as_view(), name="stamp_list"),
    path("stamps/new/", fabric.StampFormView.as_view(), name="stamp_create"),
    path("stamps/<uuid:pk>/", fabric.StampFormView.as_view(), name="stamp_edit"),
    path("stamps/<uuid:pk>/check/", fabric.StampCheckView.as_view(), name="stamp_check"),
    path("stamps/<uuid:pk>/delete/", fabric.StampDeleteView.as_view(), name="stamp_delete"),
    path("clouds/", fabric.CloudListView.as_view(), name="cloud_list"),
    path("clouds/new/", fabric.CloudFormView.as_view(), name="cloud_create"),
    path("clouds/<uuid:pk>/", fabric.CloudFormView.as_view(), name="cloud_edit"),
    path("templates/", fabric.TemplateListView.as_view(), name="template_list"),
    path("templates/new/", fabric.TemplateFormView.as_view(), name="template_create"),
    path("templates/<uuid:pk>/", fabric.TemplateFormView.as_view(), name="template_edit"),
    path("plans/", plans.ProviderPlanListView.as_view(), name="plan_list"),
    path("plans/new/", plans.ProviderPlanFormView.as_view(), name="plan_create"),
    path("plans/<uuid:pk>/", plans.ProviderPlanFormView.as_view(), name="plan_edit"),
    path("plans/<uuid:pk>/publish/", plans.ProviderPlanPublishView.as_view(),
         name="plan_publish"),
    path("plans/<uuid:pk>/decommission/", plans.ProviderPlanDecommissionView.as_view(),
         name="plan_decommission"),
    path("addons/", plans.ProviderAddOnListView.as_view(), name="addon_list"),
    path("addons/new/", plans.ProviderAddOnFormView.as_view(), name="addon_create"),
    path("addons/<uuid:pk>/", plans.ProviderAddOnFormView.as_view(), name="addon_edit"),
    path("tenants/", provider_tenants.ProviderTenantListView.as_view(), name="tenant_list"),
    path("tenants/pick/", provider_tenants.ProviderTenantPickView.as_view(),
         name="tenant_pick"),
    path("tenants/<uuid:pk>/", provider_tenants.ProviderTenantDetailView.as_view(),
         name="tenant_detail"),
    path("subscriptions/", subscriptions.ProviderSubscriptionListView.as_view(),
         name="subscription_list"),
    path("subscriptions/<uuid:pk>/suspend/",
         subscriptions.ProviderSubscriptionSuspendView.as_view(),
         name="subscription_suspend"),
    path("subscriptions/<uuid:pk>/resume/", subscriptions.ProviderSubscriptionResumeView.as_view(),
         name="subscription_resume"),
    path("audit/", tenancy.ProviderAuditView.as_view(), name="audit"),
    path("audit/export.csv", tenancy.ProviderAuditExportView.as_view(), name="audit_export"),
    path("jobs/", provisioning.ProviderJobListView.as_view(), name="job_list"),
    path("jobs/<uuid:pk>/", provisioning.ProviderJobDetailView.as_view(), name="job_detail"),
    path("jobs/<uuid:pk>/retry/", provisioning.ProviderJobRetryView.as_view(), name="job_retry"),
    path("jobs/<uuid:pk>/cancel/", provisioning.ProviderJobCancelView.as_view(), name="job_cancel"),
    path("tasks/", task_views.ProviderTaskListView.as_view(), name="task_list"),
    path("tasks/new/", task_views.ProviderTaskFormView.as_view(), name="task_create"),
    path("tasks/<uuid:pk>/", task_views.ProviderTaskFormView.as_view(), name="task_edit"),
    path("task-runs/", task_views.ProviderTaskRunListView.as_view(), name="task_run_list"),
    path("task-runs/<uuid:pk>/", task_views.ProviderTaskRunDetailView.as_view(),
         name="task_run_detail"),
]
