"""Jobs through the API: the tenant's own, and every job for the provider with retry and
cancel (``provisioning.engine``)."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action

from base.api.responses import accepted
from base.api.viewsets import ProviderViewSet, TenantViewSet
from provisioning import engine
from provisioning.api.serializers import JobSerializer, ProviderJobSerializer
from provisioning.models import Job, JobStep

__all__ = ["JobViewSet", "ProviderJobViewSet"]

JOBS = Job.objects.prefetch_related(Prefetch("steps", queryset=JobStep.objects.order_by("index")))


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The tenant's own jobs."""

    queryset = JOBS
    serializer_class = JobSerializer
    filterset_fields = ["state", "runbook", "subscription", "resource_id"]


class ProviderJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProviderViewSet):
    """Every job, with retry and cancel."""

    queryset = JOBS.select_related("stamp", "tenant")
    serializer_class = ProviderJobSerializer
    filterset_fields = ["state", "runbook", "stamp", "tenant", "subscription", "resource_id"]

    @extend_schema(request=None, responses={202: ProviderJobSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        job = engine.retry(self.get_object(), acting_user=request.user)
        return accepted(self.get_serializer(self.get_queryset().get(pk=job.pk)).data, job.pk)

    @extend_schema(request=None, responses={202: ProviderJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = engine.cancel(self.get_object(), acting_user=request.user)
        return accepted(self.get_serializer(self.get_queryset().get(pk=job.pk)).data, job.pk)
