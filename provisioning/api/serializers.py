"""Shapes of jobs and their steps in the API; the provider sees more of a job than its
tenant."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from provisioning.models import Job, JobStep, StepState

__all__ = ["JobSerializer", "JobStepSerializer", "ProviderJobSerializer"]


class JobStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobStep
        fields = ["name", "state", "started_at", "finished_at", "log"]


class JobSerializer(serializers.ModelSerializer):
    steps = JobStepSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField(help_text="Finished steps / all steps.")

    class Meta:
        model = Job
        fields = ["id", "runbook", "state", "steps", "error", "created_at", "started_at",
                  "finished_at", "subscription", "resource_type", "resource_id", "progress",
                  "after"]
        extra_kwargs = {"after": {"help_text": "The job this one waits for: it stays `queued` "
                                               "until that one succeeds, and ends `rolled_back` "
                                               "if that one does not."}}

    @extend_schema_field(serializers.FloatField())
    def get_progress(self, job):
        steps = list(job.steps.all())
        done = sum(s.state in {StepState.SUCCEEDED, StepState.UNDONE, StepState.SKIPPED}
                   for s in steps)
        return round(done / len(steps), 3) if steps else 1.0


class ProviderJobSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "tenant", "stamp", "attempts", "run", "worker",
                  "traceback", "cancel_requested", "requested_by"]
        extra_kwargs = {"run": {"help_text": "1, and one more for each retry."}}
