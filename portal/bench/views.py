"""The baseline a benchmark compares an endpoint with: the least an authenticated write
through DRF can cost. Mounted only when ``BUFFET_BENCH_ENDPOINTS=1`` (see ``urls``)."""

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from base.models import AuditEvent
from tenants.authentication import TokenAuthentication

__all__ = ["BaselineView"]


class BaselineView(APIView):
    """Token authentication, one insert in a transaction, 201.

    It writes the row directly rather than through a service on purpose: it measures
    the web tier, the authentication and one database write, and nothing else.
    """

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(exclude=True)
    def post(self, request):
        with transaction.atomic():
            event = AuditEvent.objects.create(event="bench.baseline", actor=request.user,
                                              object_type="bench", object_id="baseline")
        return Response({"id": event.pk}, status=status.HTTP_201_CREATED)
