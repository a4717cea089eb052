"""Web UI of self-service tasks: the tenant's menu (cards), a form generated from the
task's schema with the computed choices, the run's page (live while it runs), the run
history with the approvals queue; every run with its diagnostics for the provider.

The form is checked again on the server by the same service as the API; the browser's
checks (required, bounds, pattern, the days on which the VM has a checkpoint) only help.
"""

import json

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse_lazy
from django.views.generic import DetailView, ListView, TemplateView, View

from base.errors import ServiceError
from base.web.views import ProviderPortalMixin, ServiceObjectFormView, TenantPortalMixin
from plans.models import Subscription, SubscriptionState
from provisioning.models import Task, TaskRun, TaskRunState
from provisioning.tasks_menu import choices, services
from provisioning.tasks_menu.forms import TaskForm

__all__ = ["ProviderTaskFormView", "ProviderTaskListView", "ProviderTaskRunDetailView",
           "ProviderTaskRunListView", "TaskMenuView", "TaskRunApproveView", "TaskRunDetailView",
           "TaskRunFormView", "TaskRunListView"]


class _SubscriptionMixin:
    def subscriptions(self):
        return (Subscription.objects.restrict(self.tenant).select_related("plan")
                .filter(state=SubscriptionState.ACTIVE).order_by("name"))

    def chosen_subscription(self):
        subscriptions = list(self.subscriptions())
        wanted = self.request.GET.get("subscription") or self.request.POST.get("subscription")
        if wanted:
            found = next((s for s in subscriptions if str(s.pk) == wanted), None)
            if found is None:
                raise Http404("No such subscription.")
            return found, subscriptions
        return (subscriptions[0] if subscriptions else None), subscriptions


def _fields(schema: dict, values: dict, errors: dict) -> list[dict]:
    """What the form draws for each input of a filled schema."""
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema["properties"].items():
        labels = prop.get("x-labels", {})
        widget = "text"
        if "enum" in prop:
            widget = "select"
        if prop.get("format") == "date":
            widget = "date"
        elif prop["type"] in ("integer", "number"):
            widget = "number" if widget != "select" else widget
        elif prop["type"] == "boolean":
            widget = "checkbox"
        allowed = prop.get("enum")
        fields.append({
            "name": name, "prop": prop, "widget": widget, "required": name in required,
            "label": prop.get("title") or name.replace("_", " ").capitalize(),
            "choices": [(v, labels.get(v, v)) for v in allowed or []],
            "allowed_json": json.dumps(allowed) if allowed is not None else "",
            "by_json": json.dumps(prop.get("x-enum-by", {})),
            "min": min(allowed) if widget == "date" and allowed else prop.get("minimum"),
            "max": max(allowed) if widget == "date" and allowed else prop.get("maximum"),
            "value": values.get(name, prop.get("default", "")),
            "errors": errors.get(f"inputs.{name}", []),
            "unavailable": prop.get("x-unavailable"),
        })
    return fields


def _parse(schema: dict, data) -> dict:
    """The form's fields as typed inputs; a value that does not parse is passed on as
    text, so the service names it."""
    inputs = {}
    for name, prop in schema["properties"].items():
        if prop["type"] == "boolean":
            inputs[name] = data.get(name) == "on"
            continue
        raw = data.get(name, "")
        if raw == "":
            continue
        if prop["type"] in ("integer", "number"):
            try:
                inputs[name] = int(raw) if prop["type"] == "integer" else float(raw)
            except ValueError:
                inputs[name] = raw
        else:
            inputs[name] = raw
    return inputs


class TaskMenuView(TenantPortalMixin, _SubscriptionMixin, TemplateView):
    section = "tasks"
    template_name = "provisioning/task_menu.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        subscription, subscriptions = self.chosen_subscription()
        tasks = []
        if subscription is not None:
            for task in services.menu(self.tenant, self.request.user,
                                      subscription=subscription):
                asks = [p.get("title") or n for n, p in task.input_schema["properties"].items()]
                tasks.append({"task": task, "asks": asks})
        context.update(subscription=subscription, subscriptions=subscriptions, tasks=tasks)
        return context


class TaskRunFormView(TenantPortalMixin, _SubscriptionMixin, TemplateView):
    """GET draws the form, POST runs the task."""

    section = "tasks"
    template_name = "provisioning/task_form.html"

    def task(self, subscription):
        task = services.menu(self.tenant, self.request.user,
                             subscription=subscription).filter(slug=self.kwargs["slug"]).first()
        if task is None:
            raise Http404("No such task.")
        return task

    def render_form(self, subscription, values=None, errors=None, status=200):
        task = self.task(subscription)
        schema = choices.fill(task.input_schema, subscription)
        context = self.get_context_data(task=task, subscription=subscription,
                                        fields=_fields(schema, values or {}, errors or {}))
        return self.render_to_response(context, status=status)

    def get(self, request, *args, **kwargs):
        subscription, _ = self.chosen_subscription()
        if subscription is None:
            raise Http404("No active subscription.")
        return self.render_form(subscription)

    def post(self, request, *args, **kwargs):
        subscription, _ = self.chosen_subscription()
        if subscription is None:
            raise Http404("No active subscription.")
        task = self.task(subscription)
        inputs = _parse(task.input_schema, request.POST)
        try:
            run = services.run_task(task.slug, subscription=subscription, inputs=inputs,
                                    acting_user=request.user)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.render_form(subscription, request.POST, exc.errors,
                                    status=exc.status)
        if run.state == TaskRunState.PENDING_APPROVAL:
            messages.info(request, "The task waits for an owner or admin to approve it.")
        return redirect("task_run_detail", run.pk)


def _runs():
    return TaskRun.objects.select_related("task", "job", "subscription", "requested_by",
                                          "approved_by")


class _RunPresenter:
    def present(self, run: TaskRun, *, reveal: bool = False) -> dict:
        state = services.effective_state(run)
        result = services.result_of(run)
        if reveal:
            sealed = services.reveal_sealed(run, self.request.user)
            result = {**result, "outputs": {**result.get("outputs", {}), **sealed}}
        return {"run": run, "state": state, "result": result,
                "finished": state in TaskRun.TERMINAL_STATES,
                "label": TaskRunState(state).label}


class TaskRunDetailView(TenantPortalMixin, _RunPresenter, DetailView):
    section = "tasks"
    context_object_name = "run"

    def get_queryset(self):
        return _runs().restrict(self.tenant)

    def get_template_names(self):
        if self.request.htmx:
            return ["provisioning/task_run_live.html"]
        return ["provisioning/task_run_detail.html"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(view=self.present(self.object, reveal=True),
                       can_decide=self.request.user.has_perm("provisioning.approve_task_runs",
                                                             self.tenant))
        return context


class TaskRunListView(TenantPortalMixin, _RunPresenter, ListView):
    section = "tasks"
    template_name = "provisioning/task_run_list.html"
    paginate_by = 25

    def get_queryset(self):
        return _runs().restrict(self.tenant).order_by("-created_at")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        can_decide = self.request.user.has_perm("provisioning.approve_task_runs", self.tenant)
        pending = (_runs().restrict(self.tenant).filter(state=TaskRunState.PENDING_APPROVAL)
                   if can_decide else [])
        context.update(rows=[self.present(r) for r in context["page_obj"].object_list],
                       pending=[self.present(r) for r in pending], can_decide=can_decide)
        return context


class TaskRunApproveView(TenantPortalMixin, View):
    """Approve or reject a held run (owners and admins)."""

    section = "tasks"
    write_permission = "provisioning.approve_task_runs"
    approve = True

    def post(self, request, pk):
        run = get_object_or_404(TaskRun.objects.restrict(self.tenant), pk=pk)
        decide = services.approve_run if self.approve else services.reject_run
        try:
            run = decide(run, acting_user=request.user)
        except ServiceError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, "Approved: the task runs." if self.approve
                             else "Rejected: the task does not run.")
        back = request.POST.get("next", "")
        # Only a path of this site: never an address elsewhere.
        return redirect(back) if back.startswith("/") and not back.startswith("//") \
            else redirect("task_run_detail", pk)


# --- provider -------------------------------------------------------------------------

class ProviderTaskRunListView(ProviderPortalMixin, _RunPresenter, ListView):
    section = "task_runs"
    template_name = "provisioning/task_run_list.html"
    paginate_by = 50

    def get_queryset(self):
        return _runs().select_related("tenant").order_by("-created_at")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(rows=[self.present(r) for r in context["page_obj"].object_list],
                       pending=[], can_decide=False)
        return context


class ProviderTaskRunDetailView(ProviderPortalMixin, _RunPresenter, DetailView):
    section = "task_runs"
    template_name = "provisioning/task_run_detail.html"
    context_object_name = "run"

    def get_queryset(self):
        return _runs().select_related("tenant", "job__stamp")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        run = self.object
        steps = list(run.job.steps.order_by("index")) if run.job else []
        context.update(view=self.present(run), can_decide=False, steps=steps,
                       diagnostics=json.dumps(run.diagnostics, indent=2, default=str))
        return context


class ProviderTaskListView(ProviderPortalMixin, ListView):
    section = "tasks"
    template_name = "provisioning/provider_task_list.html"
    queryset = Task.objects.prefetch_related("plans").order_by("title")


class ProviderTaskFormView(ProviderPortalMixin, ServiceObjectFormView):
    """Publish a runbook as a task, or change one: through ``services.save_task``."""

    section = "tasks"
    queryset = Task.objects.all()
    form_class = TaskForm
    title = "Task"
    success_url = reverse_lazy("provider:task_list")
    success_message = "The task “{object.title}” was saved."

    def save(self, task, form):
        fields = form.changed_fields()
        if fields.get("input_schema") in (None, ""):
            fields.pop("input_schema", None)
            if task is not None and form.cleaned_data.get("runbook") == task.runbook:
                fields["input_schema"] = task.input_schema
            else:
                fields["input_schema"] = {}
        return services.save_task(task, fields=fields, plans=form.cleaned_data["plans"],
                                  acting_user=self.request.user)
