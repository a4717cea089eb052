"""The headers the OpenAPI document promises are sent: ``Location`` on every 202,
``Retry-After`` on a 429 and on a 409 that a retry can cure (API.md, "General")."""

import pytest
from rest_framework.test import APIClient

from provisioning.models import Job, VmState
from provisioning.tests.factories import CommissionedSubscriptionFactory, VirtualMachineFactory
from tenants.models import Role
from tenants.tests.factories import MembershipFactory, token_key


@pytest.fixture
def membership(db):
    return MembershipFactory(role=Role.OPERATOR)


@pytest.fixture
def operator(membership):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_key(membership.user)}")
    return client


@pytest.fixture
def vm_in(membership):
    """``vm_in(state)``: a VM in that state on a commissioned subscription of the
    operator's tenant."""
    subscription = CommissionedSubscriptionFactory(tenant=membership.tenant)
    return lambda state: VirtualMachineFactory(subscription=subscription, state=state)


def test_a_202_names_its_job_in_location(operator, vm_in):
    # given a running VM
    vm = vm_in(VmState.RUNNING)
    # when it is stopped
    response = operator.post(f"/api/v1/vms/{vm.pk}/stop/")
    # then the answer points at the job that stops it
    assert response.status_code == 202
    job = response.json()["job"]
    assert response["Location"] == f"/api/v1/jobs/{job}/"
    assert Job.objects.get(pk=job).resource_id == str(vm.pk)
    assert operator.get(response["Location"]).json()["id"] == job


def test_a_replayed_202_names_the_same_job(operator, vm_in):
    # given a stop asked for with an Idempotency-Key
    vm = vm_in(VmState.RUNNING)
    first = operator.post(f"/api/v1/vms/{vm.pk}/stop/", HTTP_IDEMPOTENCY_KEY="stop-1")
    # when the same request comes again
    again = operator.post(f"/api/v1/vms/{vm.pk}/stop/", HTTP_IDEMPOTENCY_KEY="stop-1")
    # then it is the first answer, Location included, and no second job
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"] == f"/api/v1/jobs/{first.json()['job']}/"
    assert Job.objects.filter(resource_id=str(vm.pk)).count() == 1


def test_a_provider_retry_names_the_job_it_runs_again(staff, operator, vm_in):
    # given a VM whose stop was cancelled before it started
    vm = vm_in(VmState.RUNNING)
    job = operator.post(f"/api/v1/vms/{vm.pk}/stop/").json()["job"]
    assert staff.post(f"/api/v1/admin/jobs/{job}/cancel/")["Location"] == f"/api/v1/jobs/{job}/"
    # when the provider retries it
    response = staff.post(f"/api/v1/admin/jobs/{job}/retry/")
    # then Location is the same job
    assert response.status_code == 202, response.content
    assert response["Location"] == f"/api/v1/jobs/{job}/"


@pytest.mark.parametrize("state", [VmState.PROVISIONING, VmState.STOPPING, VmState.RESIZING])
def test_a_409_against_work_in_progress_says_when_to_retry(operator, vm_in, state):
    # given a VM that a job is acting on
    vm = vm_in(state)
    # when it is asked to start
    response = operator.post(f"/api/v1/vms/{vm.pk}/start/")
    # then the conflict is one a retry can cure, and says when
    assert response.status_code == 409
    assert response.json()["type"].endswith("/vm-state")
    assert int(response["Retry-After"]) >= 1


def test_a_409_that_waiting_cannot_cure_has_no_retry_after(operator, vm_in):
    # given a VM that runs
    vm = vm_in(VmState.RUNNING)
    # when it is asked to start, or a key is reused with another body
    started = operator.post(f"/api/v1/vms/{vm.pk}/start/")
    operator.post(f"/api/v1/vms/{vm.pk}/stop/", HTTP_IDEMPOTENCY_KEY="k")
    reused = operator.post(f"/api/v1/vms/{vm.pk}/resize/", {"vcpus": 2, "memory_mb": 512},
                           format="json", HTTP_IDEMPOTENCY_KEY="k")
    # then both are conflicts that no wait resolves
    assert started.status_code == reused.status_code == 409
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    assert not started.has_header("Retry-After") and not reused.has_header("Retry-After")


def test_a_429_says_when_to_retry(anon, db, monkeypatch):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    # given a token endpoint that allows one request an hour
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES",
                        {**api_settings.DEFAULT_THROTTLE_RATES, "token": "1/hour"})
    body = {"email": "nobody@example.com", "password": "not the password"}
    # when a second request comes
    codes = [anon.post("/api/v1/auth/token/", body, format="json") for _ in range(2)]
    # then it is throttled, with the wait in whole seconds
    assert [r.status_code for r in codes] == [401, 429]
    assert codes[1]["Content-Type"] == "application/problem+json"
    assert 1 <= int(codes[1]["Retry-After"]) <= 3600
