from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.api.viewsets import ProviderViewSet, TenantViewSet
from provisioning import engine, services
from provisioning.api.serializers import (
    CloudSerializer,
    JobSerializer,
    ProviderJobSerializer,
    StampCheckSerializer,
    StampSerializer,
    TemplateSerializer,
)
from provisioning.models import Cloud, Job, JobStep, Stamp, Template

__all__ = ["CloudViewSet", "JobViewSet", "ProviderJobViewSet", "StampViewSet",
           "TemplateViewSet"]

JOBS = Job.objects.prefetch_related(Prefetch("steps", queryset=JobStep.objects.order_by("index")))


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


class StampViewSet(CatalogViewSet):
    queryset = Stamp.objects.all()
    serializer_class = StampSerializer
    filterset_fields = ["region", "driver", "health"]

    def save(self, instance, serializer):
        return services.save_stamp(
            instance, fields=serializer.validated_data, acting_user=self.request.user
        )

    @extend_schema(responses=StampCheckSerializer(many=True))
    @action(detail=True, methods=["get"])
    def checks(self, request, pk=None):
        """The stamp's health history, newest first."""
        page = self.paginate_queryset(self.get_object().checks.all())
        return self.get_paginated_response(StampCheckSerializer(page, many=True).data)

    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        stamp = services.check_stamp(self.get_object(), acting_user=request.user)
        return Response(StampSerializer(stamp).data, status=status.HTTP_200_OK)


class CloudViewSet(CatalogViewSet):
    queryset = Cloud.objects.select_related("stamp").prefetch_related("capacity_rows")
    serializer_class = CloudSerializer
    filterset_fields = ["stamp"]

    def save(self, instance, serializer):
        return services.save_cloud(
            instance, fields=serializer.validated_data, acting_user=self.request.user
        )


class TemplateViewSet(CatalogViewSet):
    queryset = Template.objects.select_related("cloud")
    serializer_class = TemplateSerializer
    filterset_fields = ["cloud", "os"]

    def save(self, instance, serializer):
        return services.save_template(
            instance, fields=serializer.validated_data, acting_user=self.request.user
        )


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
        return Response(self.get_serializer(self.get_queryset().get(pk=job.pk)).data,
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: ProviderJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = engine.cancel(self.get_object(), acting_user=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=job.pk)).data,
                        status=status.HTTP_202_ACCEPTED)
