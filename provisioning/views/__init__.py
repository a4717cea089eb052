"""Web UI of provisioning: the tenant's VMs, checkpoints and networks (``resources``) and
the jobs of both portals (``jobs``)."""

from provisioning.views.jobs import (
    JobDetailView,
    JobListView,
    ProviderJobCancelView,
    ProviderJobDetailView,
    ProviderJobListView,
    ProviderJobRetryView,
)
from provisioning.views.resources import (
    CheckpointCreateView,
    CheckpointDeleteView,
    CheckpointRestoreView,
    NetworkDeleteView,
    NetworkListView,
    QuotaPreviewView,
    VmCreateView,
    VmDeleteView,
    VmDetailView,
    VmListView,
    VmNewView,
    VmPowerView,
    VmResizeView,
)

__all__ = [
    "CheckpointCreateView",
    "CheckpointDeleteView",
    "CheckpointRestoreView",
    "JobDetailView",
    "JobListView",
    "NetworkDeleteView",
    "NetworkListView",
    "ProviderJobCancelView",
    "ProviderJobDetailView",
    "ProviderJobListView",
    "ProviderJobRetryView",
    "QuotaPreviewView",
    "VmCreateView",
    "VmDeleteView",
    "VmDetailView",
    "VmListView",
    "VmNewView",
    "VmPowerView",
    "VmResizeView",
]
