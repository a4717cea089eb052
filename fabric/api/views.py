"""The provider API of the fabric catalog (``/api/v1/admin/stamps|clouds|templates/``);
writes go through ``fabric.services``."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from base.api.viewsets import CatalogViewSet
from fabric import services
from fabric.api.serializers import (
    CloudSerializer,
    StampCheckSerializer,
    StampSerializer,
    TemplateSerializer,
)
from fabric.models import Cloud, Stamp, Template

__all__ = ["CloudViewSet", "StampViewSet", "TemplateViewSet"]


class StampViewSet(mixins.DestroyModelMixin, CatalogViewSet):
    queryset = Stamp.objects.all()
    serializer_class = StampSerializer
    filterset_fields = ["region", "driver", "health", "enabled"]

    def save(self, instance, serializer):
        return services.save_stamp(
            instance, fields=serializer.validated_data, acting_user=self.request.user
        )

    def destroy(self, request, *args, **kwargs):
        """Delete a stamp that nothing uses; if clouds or jobs use it, 409 names them.
        (To retire a stamp that is still used, set ``enabled: false``: nothing new is
        placed on its clouds and what runs there keeps running.)"""
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance):
        services.delete_stamp(instance, acting_user=self.request.user)

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
