"""Web UI of the runbook engine's jobs: the tenant's own jobs, and every job for the
provider with retry and cancel (``provisioning.engine``).

A job's page follows it live: while the job has not finished, its progress polls the
page every second (htmx) and stops once the job has ended.
"""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import DetailView

from base.web.views import (
    ProviderPortalMixin,
    SearchListMixin,
    ServiceActionView,
    TenantPortalMixin,
)
from provisioning import engine, presenters
from provisioning.forms import JobFilterForm, ProviderJobFilterForm
from provisioning.models import Job, JobStep

__all__ = [
    "JobDetailView",
    "JobListView",
    "ProviderJobCancelView",
    "ProviderJobDetailView",
    "ProviderJobListView",
    "ProviderJobRetryView",
    "jobs_with_steps",
]


def jobs_with_steps(*, logs: bool = True):
    """Jobs and their steps; a list shows neither the steps' logs nor any job's inputs and
    outputs, and a page of 25 jobs has hundreds of steps."""
    steps = JobStep.objects.order_by("index")
    if not logs:
        steps = steps.only("job_id", "index", "name", "state", "started_at", "finished_at")
    return Job.objects.defer("inputs", "outputs").prefetch_related(Prefetch("steps", steps))


class JobListMixin(SearchListMixin):
    """A list of jobs drawn with their progress; it polls while one has not ended."""

    template_name = "provisioning/job_list.html"  # both portals; the provider's has more
    search_fields = ("runbook", "error", "resource_id")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rows = presenters.job_rows(context["page_obj"].object_list)
        context.update(rows=rows, busy=any(not row.finished for row in rows))
        return context


class JobDetailMixin(DetailView):
    """A job's page; its htmx poll gets only the live part."""

    context_object_name = "job"

    def get_template_names(self):
        if self.request.htmx:
            return ["provisioning/job_live.html"]
        return ["provisioning/job_detail.html"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["row"] = presenters.job_rows([self.object])[0]
        return context


# --- Tenant ---------------------------------------------------------------------------

class JobListView(TenantPortalMixin, JobListMixin):
    section = "jobs"
    filter_form_class = JobFilterForm

    def get_filter_form_kwargs(self):
        return {"tenant": self.tenant}

    def get_queryset(self):
        jobs = (jobs_with_steps(logs=False).restrict(self.tenant)
                .select_related("subscription", "requested_by"))
        return self.search(self.filter(jobs.order_by("-created_at")))


class JobDetailView(TenantPortalMixin, JobDetailMixin):
    section = "jobs"

    def get_queryset(self):
        return (jobs_with_steps().restrict(self.tenant)
                .select_related("subscription", "requested_by"))


# --- Provider -------------------------------------------------------------------------

class ProviderJobListView(ProviderPortalMixin, JobListMixin):
    section = "jobs"
    filter_form_class = ProviderJobFilterForm
    search_fields = ("runbook", "error", "resource_id", "tenant__name", "stamp__name")

    def get_queryset(self):
        jobs = jobs_with_steps(logs=False).select_related("tenant", "stamp", "subscription",
                                                          "requested_by")
        return self.search(self.filter(jobs.order_by("-created_at")))


class ProviderJobDetailView(ProviderPortalMixin, JobDetailMixin):
    section = "jobs"
    queryset = jobs_with_steps().select_related("tenant", "stamp", "subscription",
                                                "requested_by")


class ProviderJobActionView(ProviderPortalMixin, ServiceActionView):
    section = "jobs"

    def get_object(self):
        return get_object_or_404(Job, pk=self.kwargs["pk"])

    def get_success_url(self):
        return reverse("provider:job_detail", args=[self.kwargs["pk"]])


class ProviderJobRetryView(ProviderJobActionView):
    confirm = ("Run “{object.runbook}” again? It starts from its first unfinished step "
               "(from the beginning, if it was rolled back), with fresh idempotency keys.")
    confirm_label = "Retry job"
    destructive = False

    def perform(self, job):
        job = engine.retry(job, acting_user=self.request.user)
        return f"The job is queued again (run {job.run})."


class ProviderJobCancelView(ProviderJobActionView):
    confirm = ("Cancel “{object.runbook}”? A queued job stops at once; a running one stops "
               "after its current step and undoes what it did.")
    confirm_label = "Cancel job"

    def perform(self, job):
        job = engine.cancel(job, acting_user=self.request.user)
        if job.is_finished:
            return "The job was cancelled."
        return "The job will stop after its current step and undo what it did."
