"""Answers that many endpoints share: 202 Accepted for work a job carries out."""

from django.urls import reverse
from rest_framework import serializers, status
from rest_framework.response import Response

__all__ = ["JobAcceptedSerializer", "accepted", "job_location"]


class JobAcceptedSerializer(serializers.Serializer):
    job = serializers.UUIDField(help_text="The job that carries out the request.")


def job_location(job_id) -> str:
    """The URL a 202 names in ``Location``: ``/api/v1/jobs/<uuid>/`` (API.md)."""
    return reverse("job-detail", kwargs={"pk": job_id})


def accepted(body: dict, job_id) -> Response:
    """202 with ``body``; ``Location`` is the URL of the job that carries the work out."""
    return Response(body, status=status.HTTP_202_ACCEPTED,
                    headers={"Location": job_location(job_id)})
