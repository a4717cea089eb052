"""Jobs of the runbook engine and what a subscription has on a stamp: its sites, networks,
VMs and checkpoints.

Every lifecycle is a state machine (``protected=True``: only its named transitions change
it; a CHECK refuses other values) with declared ``TERMINAL_STATES`` and the
``TRANSITIONAL_STATES`` that say a job is in flight (``provisioning.stuck`` fails one left
there with no job). Transitions that start work have strict sources: the preconditions of
the tenant's actions. Those that end a job also accept ``failed``: the sweeper may have
given up on a resource whose job a provider then retries, and the job knows the fabric.
"""


__all__ = [
    "ACTIVE_RUN_STATES",
    "ConsolePassword",
    "Task",
    "TaskHiding",
    "TaskRun",
    "TaskRunState",
    "AddressState",
    "ExternalAddress",
    "JOB_TERMINAL_STATES",
    "Job",
    "JobState",
    "JobStep",
    "Network",
    "NetworkAddress",
    "NetworkState",
    "Site",
    "SiteRole",
    "SiteState",
    "Snapshot",
    "SnapshotState",
    "StepState",
    "VM_LIVE_STATES",
    "VirtualMachine",
    "VmState",
]

from provisioning.models.jobs import JOB_TERMINAL_STATES, Job, JobState, JobStep, StepState
from provisioning.models.resources import (
    VM_LIVE_STATES,
    Network,
    NetworkAddress,
    NetworkState,
    Snapshot,
    SnapshotState,
    VirtualMachine,
    VmState,
)
from provisioning.models.sites import AddressState, ExternalAddress, Site, SiteRole, SiteState
from provisioning.models.tasks import (
    ACTIVE_RUN_STATES,
    ConsolePassword,
    Task,
    TaskHiding,
    TaskRun,
    TaskRunState,
)
