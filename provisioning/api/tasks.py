"""Self-service tasks over the API (API.md, "Self-service tasks"): the tenant's menu, runs
and approvals; the provider's tasks and every run with its diagnostics."""

import django_filters
from django.db import transaction
from django.db.models import ProtectedError
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from base.api.fields import StrictUUIDField
from base.api.schema import problems
from base.api.viewsets import CatalogViewSet, ProviderViewSet, TenantViewSet
from base.errors import Conflict, Invalid
from plans.models import Plan
from provisioning.models import Task, TaskRun, TaskRunState
from provisioning.tasks_menu import choices, services
from tenants.models import Role

__all__ = ["ProviderTaskRunViewSet", "ProviderTaskViewSet", "TaskRunViewSet", "TaskViewSet"]


# --- serializers ----------------------------------------------------------------------

_SCHEMA_HELP = ("JSON Schema of the inputs (a subset: type, enum, minimum, maximum, "
                "minLength, maxLength, pattern, format date; `x-resource` names an object "
                "that must be yours; never additional properties). With `subscription`, "
                "choices computed from your objects are filled in as `enum` (with "
                "`x-labels`, and `x-enum-by` when they depend on another input).")


class TaskSerializer(serializers.ModelSerializer):
    input_schema = serializers.SerializerMethodField(help_text=_SCHEMA_HELP)

    class Meta:
        model = Task
        fields = ["slug", "title", "description", "input_schema", "requires_approval"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_input_schema(self, task):
        subscription = self.context.get("subscription")
        if subscription is None:
            return task.input_schema
        return choices.fill(task.input_schema, subscription)


class RunRequestSerializer(serializers.Serializer):
    subscription = StrictUUIDField(help_text="The subscription the task runs in.")
    inputs = serializers.JSONField(default=dict, help_text="The task's inputs, by name.")


class TaskRunSerializer(serializers.ModelSerializer):
    task = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    state = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField(
        help_text="`{message, outputs}` for you; a secret made by the run (a new password) "
                  "is in `outputs` once, on the first read of whoever asked for it.")
    requested_by = serializers.SlugRelatedField(slug_field="email", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="email", read_only=True,
                                               help_text="Who approved or rejected it.")

    class Meta:
        model = TaskRun
        fields = ["id", "task", "subscription", "inputs", "state", "job", "result",
                  "requested_by", "approved_by", "created_at", "decided_at"]

    @extend_schema_field(serializers.ChoiceField(choices=TaskRunState.choices))
    def get_state(self, run):
        return services.effective_state(run)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_result(self, run):
        result = services.result_of(run)
        request = self.context.get("request")
        if self.context.get("reveal") and request is not None:
            sealed = services.reveal_sealed(run, request.user)
            if sealed:
                result = {**result, "outputs": {**result.get("outputs", {}), **sealed}}
        return result


class ProviderTaskRunSerializer(TaskRunSerializer):
    diagnostics = serializers.SerializerMethodField(
        help_text="For the provider only: the inputs, every step's log and each fabric call "
                  "with its timing and answer.")

    class Meta(TaskRunSerializer.Meta):
        fields = [*TaskRunSerializer.Meta.fields, "tenant", "diagnostics"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_diagnostics(self, run):
        job = run.job
        steps = [] if job is None else [
            {"name": s.name, "state": s.state, "attempts": s.attempts, "log": s.log,
             "started_at": s.started_at, "finished_at": s.finished_at, "output": s.output}
            for s in job.steps.order_by("index")]
        return {**run.diagnostics, "steps": steps,
                "job": None if job is None else {
                    "id": str(job.pk), "runbook": job.runbook, "state": job.state,
                    "error": job.error, "traceback": job.traceback, "stamp": job.stamp.name,
                    "started_at": job.started_at, "finished_at": job.finished_at}}


class ProviderTaskSerializer(serializers.ModelSerializer):
    plans = serializers.PrimaryKeyRelatedField(many=True, queryset=Plan.objects.all(),
                                               required=False)
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices),
                                  required=False, help_text="Tenant roles that may run it.")
    input_schema = serializers.JSONField(required=False, help_text=(
        "Leave out for the runbook's own schema; otherwise one no wider than it."))
    secret_parameters = serializers.DictField(
        child=serializers.CharField(max_length=4096), write_only=True, required=False,
        help_text="The provider's secrets the runbook needs: stored encrypted, never returned.")
    secret_parameter_names = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["id", "slug", "title", "description", "runbook", "input_schema", "plans",
                  "roles", "requires_approval", "enabled", "timeout_seconds",
                  "one_run_per_resource", "secret_parameters", "secret_parameter_names",
                  "created_at"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_secret_parameter_names(self, task):
        return sorted(task.secret_parameters)


HIDEABLE_ROLES = [(role.value, role.label) for role in (Role.ADMIN, Role.OPERATOR, Role.READER)]


class HideSerializer(serializers.Serializer):
    hidden_from = serializers.ListField(
        child=serializers.ChoiceField(choices=HIDEABLE_ROLES),
        help_text="The roles of your organisation that do not see the task.")


# --- tenant ---------------------------------------------------------------------------

_SUBSCRIPTION = OpenApiParameter(
    "subscription", OpenApiTypes.UUID, description="Only the tasks of this subscription's "
    "plan, with the choices computed from its objects.")


@extend_schema_view(
    list=extend_schema(summary="The menu of tasks", parameters=[_SUBSCRIPTION],
                       responses={200: TaskSerializer(many=True), **problems(400, 404)},
                       description="The tasks published to your subscriptions' plans for "
                                   "your role; 404 for a subscription that is not yours."),
    retrieve=extend_schema(summary="One task of the menu", parameters=[_SUBSCRIPTION],
                           responses={200: TaskSerializer, **problems(400)}),
)
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = Task.objects.all()
    serializer_class = TaskSerializer
    lookup_field = "slug"
    write_permission = "tenants.view_tenant"  # each task names the roles that may run it
    filter_backends: list = []

    def _subscription(self):
        value = self.request.query_params.get("subscription")
        if not value:
            return None
        if choices._uuid(value) is None:
            raise Invalid("Not a subscription id.", errors={"subscription": ["A UUID."]})
        return services.subscription_of(self.tenant, value)

    def get_queryset(self):
        return services.menu(self.tenant, self.request.user, subscription=self._subscription())

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.action in ("list", "retrieve"):
            context["subscription"] = self._subscription()
        return context

    @extend_schema(summary="Run a task", request=RunRequestSerializer,
                   responses={202: TaskRunSerializer, **problems(404)},
                   description="The inputs are checked on the server: 400 names each bad "
                               "input as `inputs.<key>` and nothing is queued; 404 for a task "
                               "not published to the subscription's plan or an object that is "
                               "not yours; 403 for a role that may not run it; 409 "
                               "`/task-busy` while another run is unfinished on the same "
                               "object. A task that needs approval answers "
                               "`pending_approval`, without a job.")
    @action(detail=True, methods=["post"])
    def run(self, request, slug=None):
        body = RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        subscription = services.subscription_of(self.tenant, body.validated_data["subscription"])
        run = services.run_task(slug, subscription=subscription,
                                inputs=body.validated_data["inputs"], acting_user=request.user)
        data = TaskRunSerializer(run, context={"request": request}).data
        location = (reverse("job-detail", kwargs={"pk": run.job_id}) if run.job_id
                    else reverse("task-run-detail", kwargs={"pk": run.pk}))
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(summary="Hide a task from roles", request=HideSerializer,
                   responses={200: HideSerializer},
                   description="An owner hides a task of the menu from roles of the "
                               "organisation (an empty list shows it again).")
    @action(detail=True, methods=["post"], url_path="hide")
    def hide(self, request, slug=None):
        task = self.get_object()
        body = HideSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        hiding = services.hide_task(self.tenant, task, roles=body.validated_data["hidden_from"],
                                    acting_user=request.user)
        return Response({"hidden_from": hiding.roles})


class TaskRunFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=TaskRunState.choices, method="in_state",
                                        help_text="The run's state as answered.")

    class Meta:
        model = TaskRun
        fields = ["subscription", "state"]

    def in_state(self, queryset, name, value):
        return queryset.filter(services.state_filter(value))


class ProviderTaskRunFilter(TaskRunFilter):
    class Meta:
        model = TaskRun
        fields = ["tenant", "subscription", "state", "task"]


_RUNS = TaskRun.objects.select_related("task", "job", "requested_by", "approved_by")


@extend_schema_view(
    list=extend_schema(summary="List task runs", description="Your organisation's runs."),
    retrieve=extend_schema(summary="Get a task run"),
)
class TaskRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = _RUNS
    serializer_class = TaskRunSerializer
    filterset_class = TaskRunFilter
    write_permission = "provisioning.approve_task_runs"

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "reveal": self.action == "retrieve"}

    def _decide(self, request, pk, decide):
        run = decide(self.get_object(), acting_user=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(summary="Approve a run", request=None, responses={200: TaskRunSerializer},
                   description="An owner or admin lets a run that waits for approval start; "
                               "its inputs are checked again, and a run they no longer fit "
                               "ends `failed`. 409 `/task-run-state` if it is not waiting.")
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, pk, services.approve_run)

    @extend_schema(summary="Reject a run", request=None, responses={200: TaskRunSerializer},
                   description="The run ends `rejected` without running. 409 "
                               "`/task-run-state` if it is not waiting.")
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, pk, services.reject_run)


# --- provider -------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List tasks"),
    retrieve=extend_schema(summary="Get a task"),
    create=extend_schema(summary="Publish a task",
                         description="A runbook that runs as a task, with an input schema "
                                     "no wider than the runbook's, to plans and roles."),
    update=extend_schema(summary="Replace a task"),
    partial_update=extend_schema(summary="Change a task"),
    destroy=extend_schema(summary="Delete a task", responses={204: None, **problems(409)},
                          description="Only a task that never ran (409 otherwise: disable "
                                      "it)."),
)
class ProviderTaskViewSet(mixins.DestroyModelMixin, CatalogViewSet):
    queryset = Task.objects.prefetch_related("plans").order_by("title")
    serializer_class = ProviderTaskSerializer
    filterset_fields = ["enabled", "runbook"]

    def save(self, instance, serializer):
        data = dict(serializer.validated_data)
        plans = data.pop("plans", None)
        return services.save_task(instance, fields=data, plans=plans,
                                  acting_user=self.request.user)

    def perform_destroy(self, instance):
        try:
            with transaction.atomic():
                instance.delete()
        except ProtectedError as exc:
            raise Conflict("The task has runs: disable it instead.",
                           errors={"runs": ["It ran."]}) from exc


@extend_schema_view(
    list=extend_schema(summary="List every task run"),
    retrieve=extend_schema(summary="Get any task run, with its diagnostics"),
)
class ProviderTaskRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                             ProviderViewSet):
    queryset = _RUNS.select_related("tenant", "job__stamp")
    serializer_class = ProviderTaskRunSerializer
    filterset_class = ProviderTaskRunFilter
