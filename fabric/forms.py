"""Forms of the provider's fabric catalog. They parse input; ``fabric.services`` and the
models' own validation decide."""

from django import forms

from base.web.forms import ServiceModelForm
from fabric.models import Cloud, Stamp, Template

__all__ = ["CloudForm", "StampForm", "TemplateForm"]


class StampForm(ServiceModelForm):
    # Not a model field of the form: stored encrypted and never shown again.
    credentials = forms.JSONField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text='JSON, e.g. {"token": "…"}. Stored encrypted and never shown; '
                  "leave empty to keep the current credentials.")

    class Meta:
        model = Stamp
        fields = ["name", "region", "driver", "endpoint", "enabled"]
        labels = {"enabled": "Takes new work"}
        help_texts = {"name": "Lowercase letters, digits and hyphens.",
                      "endpoint": "URL of the fabric controller, e.g. http://10.0.0.5:8101.",
                      "enabled": "Off: no new subscriptions or DR protection on its clouds; "
                                 "what runs there keeps running."}

    def changed_fields(self):
        fields = super().changed_fields()
        if not fields.get("credentials"):
            fields.pop("credentials", None)
        return fields


class CloudForm(ServiceModelForm):
    fieldsets = [
        ("Cloud", ["name", "stamp"]),
        ("Capacity", ["vcpus", "memory_mb", "storage_gb", "vms"]),
        ("Overcommit", ["overcommit_cpu", "overcommit_memory"]),
        ("Networks", ["default_network_cidr", "external_pool_cidr"]),
    ]

    class Meta:
        model = Cloud
        fields = ["name", "stamp", "vcpus", "memory_mb", "storage_gb", "vms", "overcommit_cpu",
                  "overcommit_memory", "default_network_cidr", "external_pool_cidr"]
        labels = {"vcpus": "vCPUs", "memory_mb": "Memory (MB)", "storage_gb": "Storage (GB)",
                  "vms": "VMs", "overcommit_cpu": "CPU ratio",
                  "overcommit_memory": "Memory ratio"}


class TemplateForm(ServiceModelForm):
    class Meta:
        model = Template
        fields = ["name", "os", "cloud", "image", "min_vcpus", "min_memory_mb", "min_disk_gb"]
        labels = {"os": "Operating system", "min_vcpus": "Minimum vCPUs",
                  "min_memory_mb": "Minimum memory (MB)", "min_disk_gb": "Minimum disk (GB)"}
