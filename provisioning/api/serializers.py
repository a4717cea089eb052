"""Shapes of jobs and their steps in the API; the provider sees more of a job than its
tenant."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from provisioning.models import Job, JobStep, StepState

__all__ = ["STEP_FIELDS", "JobSerializer", "JobStepSerializer", "ProviderJobSerializer"]

STEP_FIELDS = ("name", "state", "started_at", "finished_at", "log")
_DONE = {StepState.SUCCEEDED, StepState.UNDONE, StepState.SKIPPED}


class JobStepSerializer(serializers.ModelSerializer):
    """A step from its row (``api.views.with_steps``): a page of jobs carries hundreds of steps, and
    a row costs a fraction of a model instance and of DRF's path through each field."""

    class Meta:
        model = JobStep
        fields = list(STEP_FIELDS)

    def to_representation(self, row):
        when = self.fields["started_at"].to_representation
        return {"name": row["name"], "state": row["state"], "started_at": when(row["started_at"]),
                "finished_at": when(row["finished_at"]), "log": row["log"]}


class JobSerializer(serializers.ModelSerializer):
    """A job and its steps; the job comes through ``api.views.with_steps``."""

    steps = JobStepSerializer(many=True, read_only=True, source="step_rows")
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
        steps = job.step_rows
        done = sum(s["state"] in _DONE for s in steps)
        return round(done / len(steps), 3) if steps else 1.0


class ProviderJobSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "tenant", "stamp", "attempts", "run", "worker",
                  "traceback", "cancel_requested", "requested_by"]
        extra_kwargs = {"run": {"help_text": "1, and one more for each retry."}}
