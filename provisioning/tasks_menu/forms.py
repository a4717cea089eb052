"""The provider's form of a task (the web side of ``admin/tasks/``)."""

from django import forms

from base.web.forms import ServiceModelForm
from provisioning.models import Task
from provisioning.tasks_menu.runbooks import TASK_RUNBOOKS
from tenants.models import Role

__all__ = ["TaskForm"]


class TaskForm(ServiceModelForm):
    runbook = forms.ChoiceField(choices=())
    roles = forms.MultipleChoiceField(choices=Role.choices, widget=forms.CheckboxSelectMultiple,
                                      initial=["owner", "admin", "operator"],
                                      help_text="The tenant roles that may run it.")
    input_schema = forms.JSONField(
        required=False, widget=forms.Textarea(attrs={"rows": 12, "class": "font-monospace"}),
        help_text="Leave empty for the runbook's own; otherwise a narrower one.")

    class Meta:
        model = Task
        fields = ["slug", "title", "description", "runbook", "input_schema", "plans", "roles",
                  "requires_approval", "timeout_seconds", "one_run_per_resource", "enabled"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2}),
                   "plans": forms.CheckboxSelectMultiple}
        labels = {"timeout_seconds": "Timeout (seconds)",
                  "one_run_per_resource": "At most one run at a time per object"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["runbook"].choices = [(name, f"{name}: {entry.runbook.description}")
                                          for name, entry in sorted(TASK_RUNBOOKS.items())]
