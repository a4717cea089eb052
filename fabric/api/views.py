"""The provider API of the fabric catalog (``/api/v1/admin/stamps|clouds|templates/``);
writes go through ``fabric.services``."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from base.api.schema import problems
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


@extend_schema_view(
    list=extend_schema(summary="List stamps"),
    retrieve=extend_schema(summary="Get a stamp"),
    create=extend_schema(summary="Register a stamp",
                         description="`credentials` are stored encrypted and never returned."),
    update=extend_schema(summary="Replace a stamp"),
    partial_update=extend_schema(summary="Change a stamp"),
    destroy=extend_schema(
        summary="Delete an unused stamp",
        description="Only a stamp that no cloud, site or job uses; otherwise 409 names what "
                    "does. To retire a stamp that is still used, set `enabled: false`: nothing "
                    "new is placed on its clouds and what runs there keeps running.",
        responses={204: None, **problems(409)}),
)
class StampViewSet(mixins.DestroyModelMixin, CatalogViewSet):
    queryset = Stamp.objects.all()
    serializer_class = StampSerializer
    filterset_fields = ["region", "driver", "health", "enabled"]

    def save(self, instance, serializer):
        return services.save_stamp(
            instance, fields=serializer.validated_data, acting_user=self.request.user
        )

    def perform_destroy(self, instance):
        services.delete_stamp(instance, acting_user=self.request.user)

    @extend_schema(summary="A stamp's health history", description="Newest first.",
                   responses=StampCheckSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def checks(self, request, pk=None):
        """The stamp's health history, newest first."""
        page = self.paginate_queryset(self.get_object().checks.all())
        return self.get_paginated_response(StampCheckSerializer(page, many=True).data)

    @extend_schema(summary="Check a stamp now", request=None, responses=StampSerializer,
                   description="Ask the stamp for its health and capacity, and record it.")
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        stamp = services.check_stamp(self.get_object(), acting_user=request.user)
        return Response(StampSerializer(stamp).data, status=status.HTTP_200_OK)


@extend_schema_view(
    list=extend_schema(summary="List clouds"),
    retrieve=extend_schema(summary="Get a cloud"),
    create=extend_schema(summary="Create a cloud on a stamp"),
    update=extend_schema(summary="Replace a cloud"),
    partial_update=extend_schema(summary="Change a cloud"),
)
class CloudViewSet(CatalogViewSet):
    queryset = Cloud.objects.select_related("stamp").prefetch_related("capacity_rows")
    serializer_class = CloudSerializer
    filterset_fields = ["stamp"]

    def save(self, instance, serializer):
        return services.save_cloud(
            instance, fields=serializer.validated_data, acting_user=self.request.user
        )


@extend_schema_view(
    list=extend_schema(summary="List templates"),
    retrieve=extend_schema(summary="Get a template"),
    create=extend_schema(summary="Add a template to a cloud"),
    update=extend_schema(summary="Replace a template"),
    partial_update=extend_schema(summary="Change a template"),
)
class TemplateViewSet(CatalogViewSet):
    queryset = Template.objects.select_related("cloud")
    serializer_class = TemplateSerializer
    filterset_fields = ["cloud", "os"]

    def save(self, instance, serializer):
        return services.save_template(
            instance, fields=serializer.validated_data, acting_user=self.request.user
        )
