"""Jobs through the API: the tenant's own, and every job for the provider with retry and
cancel (``provisioning.engine``)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action

from base.api.responses import accepted
from base.api.viewsets import ProviderViewSet, TenantViewSet
from provisioning import engine
from provisioning.api.serializers import STEP_FIELDS, JobSerializer, ProviderJobSerializer
from provisioning.models import Job, JobStep

__all__ = ["JobViewSet", "ProviderJobViewSet"]

# A job's inputs and outputs are the engine's: no answer shows them.
JOBS = Job.objects.defer("inputs", "outputs")


def with_steps(jobs):
    """``jobs`` with their steps as rows (``step_rows``), in index order, in one query."""
    by_id = {job.pk: job for job in jobs}
    for job in jobs:
        job.step_rows = []
    for row in (JobStep.objects.filter(job_id__in=by_id).order_by("job_id", "index")
                .values("job_id", *STEP_FIELDS)):
        by_id[row.pop("job_id")].step_rows.append(row)
    return jobs


class _WithSteps:
    """Jobs are answered with their steps, read as rows for the page (``with_steps``)."""

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return page if page is None else with_steps(page)

    def get_object(self):
        return with_steps([super().get_object()])[0]

    def _answer(self, job):
        """202 with the job as the action left it."""
        job = with_steps([self.get_queryset().get(pk=job.pk)])[0]
        return accepted(self.get_serializer(job).data, job.pk)


_JOB = ("A job ends `succeeded`, `failed`, `rolled_back` (a failed step's changes were undone) "
        "or `cancelled`; `steps` say how far it got, with logs and timings.")


@extend_schema_view(
    list=extend_schema(summary="List the organisation's jobs"),
    retrieve=extend_schema(summary="Get a job", description=_JOB),
)
class JobViewSet(_WithSteps, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The tenant's own jobs."""

    queryset = JOBS
    serializer_class = JobSerializer
    filterset_fields = ["state", "runbook", "subscription", "resource_id"]


@extend_schema_view(
    list=extend_schema(summary="List every job"),
    retrieve=extend_schema(summary="Get any job", description=_JOB),
)
class ProviderJobViewSet(_WithSteps, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                         ProviderViewSet):
    """Every job, with retry and cancel."""

    queryset = JOBS  # tenant, stamp and requested_by are answered as ids
    serializer_class = ProviderJobSerializer
    filterset_fields = ["state", "runbook", "stamp", "tenant", "subscription", "resource_id"]

    @extend_schema(summary="Retry a job", request=None,
                   responses={202: ProviderJobSerializer},
                   description="Run a failed, rolled-back or cancelled job again, from its "
                               "first unfinished step.")
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._answer(engine.retry(self.get_object(), acting_user=request.user))

    @extend_schema(summary="Cancel a job", request=None,
                   responses={202: ProviderJobSerializer},
                   description="A queued job ends `cancelled` at once; a running one is asked "
                               "to stop and undo what it did.")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._answer(engine.cancel(self.get_object(), acting_user=request.user))
