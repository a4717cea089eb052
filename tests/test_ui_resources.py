"""The web UI of tenant resources and jobs, page by page: VMs, checkpoints, networks and
jobs in the tenant portal, every job in the provider portal. Jobs run in-process on the
memory driver, as a worker would run them."""

import re

import pytest
from django.test import Client

from conftest import unique
from fabric.drivers import memory
from fabric.models import Template
from plans.models import QuotaLedger, Subscription
from provisioning import engine
from provisioning.models import (
    Job,
    JobState,
    Network,
    NetworkState,
    Snapshot,
    StepState,
    VirtualMachine,
    VmState,
)
from provisioning.tests.factories import (
    JobFactory,
    JobStepFactory,
    NetworkFactory,
    SnapshotFactory,
    VirtualMachineFactory,
)
from tenants.models import Role
from tests.test_ui_pages import browser_for, field_error, member_of, query_count, text

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _no_heartbeat(settings):
    # Jobs run in the test's own transaction: no heartbeat thread may write beside it.
    settings.BUFFET_JOB_LEASE_SECONDS = 600


def run_jobs(**filters) -> list[Job]:
    """Run every queued job (matching ``filters``) as a worker would."""
    jobs = list(Job.objects.filter(state=JobState.QUEUED, **filters).order_by("created_at"))
    for job in jobs:
        engine.run(job.pk)
    return [Job.objects.get(pk=job.pk) for job in jobs]


@pytest.fixture
def world(signup, catalog):
    """A tenant's owner in the browser, with a subscription set up on its (memory) stamp."""
    api = signup()
    owner = browser_for(api.email)
    owner.api = api
    response = api.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                   "name": "prod"}, format="json")
    subscription = Subscription.objects.get(pk=response.json()["id"])
    [commission] = run_jobs(subscription=subscription)
    assert commission.state == JobState.SUCCEEDED, commission.error
    return {"owner": owner, "subscription": subscription, "tenant": subscription.tenant,
            "template": catalog["template"], "catalog": catalog,
            "network": subscription.networks.get(is_default=True)}


def vm_form(world, **changes) -> dict:
    return {"name": "web-1", "template": world["template"]["id"],
            "network": world["network"].pk, "vcpus": 2, "memory_mb": 1024, "disk_gb": 20,
            **changes}


def create_vm(world, **changes) -> VirtualMachine:
    response = world["owner"].post(f"/subscriptions/{world['subscription'].pk}/vms/new/",
                                   vm_form(world, **changes))
    assert response.status_code == 302, field_error(response, "name") or text(response)[-2000:]
    vm = VirtualMachine.objects.get(subscription=world["subscription"],
                                    name=changes.get("name", "web-1"))
    assert response["Location"] == f"/vms/{vm.pk}/"
    return vm


@pytest.fixture
def running_vm(world) -> VirtualMachine:
    vm = create_vm(world)
    assert [job.state for job in run_jobs()] == [JobState.SUCCEEDED]
    vm.refresh_from_db()
    assert vm.state == VmState.RUNNING
    return vm


def used(subscription, dimension: str) -> int:
    return QuotaLedger.objects.get(subscription=subscription, dimension=dimension).used


# --- access ---------------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_log_in(db):
    for url in ["/vms/", "/vms/new/", "/networks/", "/jobs/", "/admin/jobs/"]:
        response = Client().get(url)
        login = "/admin/login/" if url.startswith("/admin/") else "/login/"
        assert response.status_code == 302 and response["Location"].startswith(login), url


@pytest.mark.parametrize("url", ["/vms/", "/networks/", "/jobs/"])
def test_resource_pages_have_their_menu_entry(world, url):
    page = text(world["owner"].get(url))
    assert re.search(rf'<a class="side-nav-link active" href="{url}" aria-current="page">', page)


def test_a_single_subscription_goes_straight_to_the_vm_form(world):
    response = world["owner"].get("/vms/new/")
    assert response.status_code == 302
    assert response["Location"] == f"/subscriptions/{world['subscription'].pk}/vms/new/"


def test_with_several_subscriptions_the_user_picks_one(world):
    world["owner"].api.post("/api/v1/subscriptions/", {
        "plan": world["catalog"]["plan"]["id"], "name": "staging"}, format="json")
    page = text(world["owner"].get("/vms/new/"))
    assert "prod" in page and "staging" in page


def test_another_tenants_resources_are_404(world, running_vm, signup):
    other = browser_for(signup().email)
    job = Job.objects.filter(resource_id=str(running_vm.pk)).first()
    sid = world["subscription"].pk
    for url in [f"/vms/{running_vm.pk}/", f"/vms/{running_vm.pk}/delete/",
                f"/vms/{running_vm.pk}/resize/", f"/jobs/{job.pk}/",
                f"/subscriptions/{sid}/vms/new/", f"/subscriptions/{sid}/quota-preview/"]:
        assert other.get(url).status_code == 404, url
    assert other.post(f"/vms/{running_vm.pk}/stop/").status_code == 404
    assert other.post(f"/networks/{world['network'].pk}/delete/").status_code == 404
    assert "web-1" not in text(other.get("/vms/"))
    assert other.get("/jobs/").context["rows"] == []
    running_vm.refresh_from_db()
    assert running_vm.state == VmState.RUNNING


def test_a_reader_sees_but_cannot_operate(world, running_vm):
    reader = member_of(world["tenant"].pk, Role.READER)
    detail = text(reader.get(f"/vms/{running_vm.pk}/"))
    assert "web-1" in detail and ">Stop<" not in detail and "Take checkpoint" not in detail
    assert "New VM" not in text(reader.get("/vms/"))
    assert "Create a network" not in text(reader.get("/networks/"))
    assert reader.get("/vms/new/").status_code == 403
    assert reader.get(f"/vms/{running_vm.pk}/resize/").status_code == 403
    assert reader.post(f"/vms/{running_vm.pk}/stop/").status_code == 403
    assert reader.post("/networks/", {"subscription": world["subscription"].pk,
                                      "name": "x", "cidr": "10.9.0.0/24"}).status_code == 403


def test_an_operator_runs_vms_but_not_subscriptions(world):
    operator = member_of(world["tenant"].pk, Role.OPERATOR)
    operator.post(f"/subscriptions/{world['subscription'].pk}/vms/new/",
                  vm_form(world, name="ops-1"))
    assert VirtualMachine.objects.filter(name="ops-1").exists()


# --- VMs ------------------------------------------------------------------------------

def test_the_vm_form_offers_the_plans_images_and_usable_networks_only(world, catalog):
    other_cloud_template = catalog["post"]("templates", {
        "name": "elsewhere", "os": "Elsewhere OS", "cloud": catalog["cloud_b"]["id"],
        "image": "x"})
    NetworkFactory(subscription=world["subscription"], name="half-made",
                   cidr="10.7.0.0/24")  # still provisioning: a VM on it waits for it
    NetworkFactory(subscription=world["subscription"], name="broken", cidr="10.8.0.0/24",
                   state="failed")
    page = text(world["owner"].get(f"/subscriptions/{world['subscription'].pk}/vms/new/"))
    assert "Debian 12 (debian-12)" in page and other_cloud_template["os"] not in page
    assert "default · " in page and "half-made · " in page and "broken" not in page
    # sizes start at the image's minimum and stop at the plan's maximum
    assert re.search(r'name="memory_mb" value="512"[^>]*max="65536"', page)
    assert "At most 16 in this plan." in page


def test_create_a_vm_and_follow_it_to_running(world):
    vm = create_vm(world)
    # then the quota is held at once and the VM page follows its job
    assert used(world["subscription"], "vcpus") == 2
    page = text(world["owner"].get(f"/vms/{vm.pk}/"))
    assert "Provisioning" in page and 'hx-trigger="every 2s"' in page
    assert "Create VM web-1" in page
    # while the job runs, a poll gets the page again; once it has ended, a full reload
    poll = world["owner"].get(f"/vms/{vm.pk}/", HTTP_HX_TARGET="vm-live", **HTMX)
    assert poll.status_code == 200 and "HX-Refresh" not in poll
    run_jobs()
    poll = world["owner"].get(f"/vms/{vm.pk}/", HTTP_HX_TARGET="vm-live", **HTMX)
    assert poll["HX-Refresh"] == "true"
    page = text(world["owner"].get(f"/vms/{vm.pk}/"))
    assert "every 2s" not in page
    # only the buttons that make sense for a running VM
    assert ">Stop<" in page and ">Restart<" in page and ">Start<" not in page
    assert "Take checkpoint" in page and "Resize" in page


@pytest.mark.parametrize("changes, field, message", [
    ({"memory_mb": 128}, "memory_mb", "needs at least 512"),
    ({"disk_gb": 5}, "disk_gb", "needs at least 10"),
    ({"vcpus": 17}, "vcpus", "at most 16"),
    ({"vcpus": 0}, "vcpus", "greater than or equal to 1"),
    ({"name": ""}, "name", "required"),
    # the quota is 200 GB of storage: the quota's "storage" is the form's disk
    ({"disk_gb": 500}, "disk_gb", "only 200 of 200 are left"),
])
def test_vm_form_shows_the_services_refusal_next_to_the_field(world, changes, field, message):
    response = world["owner"].post(f"/subscriptions/{world['subscription'].pk}/vms/new/",
                                   vm_form(world, **changes))
    assert response.status_code == 200
    assert message in field_error(response, field)
    assert not VirtualMachine.objects.exists()
    assert used(world["subscription"], "vms") == 0


def test_a_taken_name_and_a_full_quota(world, running_vm):
    again = world["owner"].post(f"/subscriptions/{world['subscription'].pk}/vms/new/",
                                vm_form(world))
    assert "Already used" in field_error(again, "name")
    # 4 VMs fit the plan: the fifth is refused, with the dimension named at the top
    for i in range(2, 5):
        create_vm(world, name=f"web-{i}", vcpus=1, memory_mb=512, disk_gb=10)
    full = world["owner"].post(f"/subscriptions/{world['subscription'].pk}/vms/new/",
                               vm_form(world, name="web-5", vcpus=1, memory_mb=512, disk_gb=10))
    assert "VMs: Asks for 1 but only 0 of 4 are left." in text(full)


def test_quota_preview_adds_the_request_to_what_is_used(world, running_vm):
    url = f"/subscriptions/{world['subscription'].pk}/quota-preview/"
    # given 2 of 8 vCPUs used, when 3 more are asked for
    page = text(world["owner"].get(url, {"template": world["template"]["id"], "vcpus": 3,
                                         "memory_mb": 1024, "disk_gb": 20}, **HTMX))
    assert 'aria-valuetext="2 used + 3 of 8: 3 left after this"' in page
    assert "This fits what is left." in page and "<html" not in page
    # then 7 more are over the limit: red, and said in words
    page = text(world["owner"].get(url, {"template": world["template"]["id"], "vcpus": 7,
                                         "memory_mb": 256, "disk_gb": "2x"}, **HTMX))
    assert "1 over the limit" in page and "bg-danger" in page
    assert "the image needs at least 512 MB" in page and "does not fit" in page
    # a resize counts only the growth
    page = text(world["owner"].get(url, {"vm": running_vm.pk, "vcpus": 4, "memory_mb": 1024},
                                   **HTMX))
    assert 'aria-valuetext="2 used + 2 of 8: 4 left after this"' in page


def test_vm_list_filters_searches_and_paginates(world, running_vm):
    create_vm(world, name="db-1", vcpus=1, memory_mb=512, disk_gb=10)
    owner = world["owner"]
    assert "Showing 1–2 of 2" in text(owner.get("/vms/"))
    assert "Showing 1–1 of 1" in text(owner.get("/vms/?state=running"))
    assert "Showing 1–1 of 1" in text(owner.get("/vms/?q=db-"))
    assert "Showing 1–1 of 1" in text(owner.get(f"/vms/?q={running_vm.ip_address}"))
    assert "Showing 1–2 of 2" in text(owner.get(
        f"/vms/?subscription={world['subscription'].pk}&network={world['network'].pk}"))
    # a filter value that does not parse is ignored, not a 500
    assert owner.get("/vms/?subscription=nope&state=weird").status_code == 200
    empty = text(owner.get("/vms/?state=stopped"))
    assert "Nothing matches these filters." in empty


def test_stop_start_and_what_makes_no_sense(world, running_vm):
    owner, url = world["owner"], f"/vms/{running_vm.pk}/"
    response = owner.post(f"{url}stop/", {"next": url})
    assert response.status_code == 302 and response["Location"] == url
    running_vm.refresh_from_db()
    assert running_vm.state == VmState.STOPPING
    run_jobs()
    page = text(owner.get(url))
    assert "Stopped" in page and ">Start<" in page and ">Stop<" not in page
    # a restart of a stopped VM is refused by the service, with its reason
    refused = owner.post(f"{url}restart/", follow=True)
    assert "A stopped VM cannot be restarted." in text(refused)


def test_resize_with_the_services_errors_next_to_the_fields(world, running_vm):
    owner, url = world["owner"], f"/vms/{running_vm.pk}/resize/"
    page = text(owner.get(url))
    assert "Quota the growth would use" in page
    response = owner.post(url, {"vcpus": 9, "memory_mb": 1024})
    assert "at most 16" not in field_error(response, "vcpus")
    assert "only 6 of 8 are left" in field_error(response, "vcpus")
    same = owner.post(url, {"vcpus": 2, "memory_mb": 1024})
    assert "Unchanged" in field_error(same, "vcpus")
    assert owner.post(url, {"vcpus": 4, "memory_mb": 2048}).status_code == 302
    run_jobs()
    running_vm.refresh_from_db()
    assert (running_vm.vcpus, running_vm.memory_mb, running_vm.state) == (4, 2048, VmState.RUNNING)


def test_checkpoints_take_restore_and_delete_with_confirmation(world, running_vm):
    owner, url = world["owner"], f"/vms/{running_vm.pk}/"
    assert "required" in field_error(owner.post(f"{url}checkpoints/", {"name": ""}), "name")
    response = owner.post(f"{url}checkpoints/", {"name": "before upgrade"})
    assert response.status_code == 302
    run_jobs()
    checkpoint = Snapshot.objects.get(vm=running_vm)
    assert checkpoint.state == "ready" and used(world["subscription"], "snapshots") == 1
    page = text(owner.get(url))
    assert "before upgrade" in page and "Restore<" in page
    # restoring asks first
    confirm = text(owner.get(f"{url}checkpoints/{checkpoint.pk}/restore/"))
    assert "Are you sure?" in confirm and "What the VM wrote since is lost." in confirm
    owner.post(f"{url}checkpoints/{checkpoint.pk}/restore/")
    assert [job.runbook for job in run_jobs()] == ["snapshot.restore"]
    running_vm.refresh_from_db()
    assert running_vm.state == VmState.RUNNING
    # so does deleting
    assert "Are you sure?" in text(owner.get(f"{url}checkpoints/{checkpoint.pk}/delete/"))
    response = owner.post(f"{url}checkpoints/{checkpoint.pk}/delete/", follow=True)
    assert "The checkpoint “before upgrade” is being deleted." in text(response)
    run_jobs()
    page = text(owner.get(url))
    assert "No checkpoint yet." in page and "Delete checkpoint before upgrade" in page  # a job
    assert used(world["subscription"], "snapshots") == 0


def test_delete_a_vm_after_confirming_and_get_the_quota_back(world, running_vm):
    owner, url = world["owner"], f"/vms/{running_vm.pk}/delete/"
    confirm = text(owner.get(url))
    assert "Are you sure?" in confirm and "Delete the VM “web-1”" in confirm
    response = owner.post(url, {"next": "/vms/"})
    assert response["Location"] == "/vms/"
    assert "Deleting" in text(owner.get("/vms/"))
    assert 'hx-trigger="every 2s"' in text(owner.get("/"))  # the dashboard follows the job
    run_jobs()
    assert "web-1" not in text(owner.get("/vms/"))
    assert 'aria-valuetext="0 of 8"' in text(owner.get("/"))
    # a poll of the deleted VM's page goes back to the list
    poll = owner.get(f"/vms/{running_vm.pk}/", HTTP_HX_TARGET="vm-live", **HTMX)
    assert poll["HX-Redirect"] == "/vms/"


# --- networks -------------------------------------------------------------------------

def test_create_and_delete_a_network(world):
    owner, sid = world["owner"], world["subscription"].pk
    # the subscription page links to the form with its subscription chosen
    form = text(owner.get(f"/networks/?subscription={sid}"))
    assert re.search(rf'<option value="{sid}" selected>', form)
    response = owner.post("/networks/", {"subscription": sid, "name": "app",
                                         "cidr": "10.2.0.0/24"})
    assert response.status_code == 302
    network = Network.objects.get(name="app")
    assert network.state == NetworkState.PROVISIONING
    assert 'hx-trigger="every 2s"' in text(owner.get("/networks/"))
    run_jobs()
    network.refresh_from_db()
    assert network.state == NetworkState.READY
    assert "Are you sure?" in text(owner.get(f"/networks/{network.pk}/delete/"))
    owner.post(f"/networks/{network.pk}/delete/")
    run_jobs()
    assert '<td class="font-monospace">10.2.0.0/24</td>' not in text(owner.get("/networks/"))


@pytest.mark.parametrize("body, field, message", [
    ({"cidr": "10.0.0.128/25"}, "cidr", "Overlaps"),
    ({"cidr": "8.8.8.0/24"}, "cidr", "private IPv4 range"),
    ({"cidr": "not a cidr"}, "cidr", "does not appear to be an IPv4"),
    ({"cidr": "10.3.0.0/30"}, "cidr", "between /16 and /29"),
    ({"name": "default"}, "name", "Already used"),
])
def test_network_form_shows_the_services_refusal_next_to_the_field(world, body, field, message):
    response = world["owner"].post("/networks/", {
        "subscription": world["subscription"].pk, "name": "app", "cidr": "10.2.0.0/24", **body})
    assert response.status_code == 200
    assert message in field_error(response, field)
    assert not Network.objects.filter(is_default=False).exists()


def test_the_default_network_and_a_used_network_cannot_be_deleted(world, running_vm):
    page = text(world["owner"].get("/networks/"))
    assert "Delete<" not in page  # default, and it has a VM
    refused = world["owner"].post(f"/networks/{world['network'].pk}/delete/", follow=True)
    assert "The default network goes with the subscription." in text(refused)


# --- jobs -----------------------------------------------------------------------------

def test_job_page_polls_until_the_job_ends(world):
    vm = create_vm(world)
    job = Job.objects.get(resource_id=str(vm.pk))
    page = text(world["owner"].get(f"/jobs/{job.pk}/"))
    assert "Create VM web-1" in page and 'hx-trigger="every 1s"' in page
    assert "Create and start the VM" in page and "0 of 1 steps" in page
    # the poll gets the live part only
    live = text(world["owner"].get(f"/jobs/{job.pk}/", **HTMX))
    assert live.startswith('<div id="job-live"') or '<div id="job-live"' in live[:200]
    assert "<nav" not in live
    run_jobs()
    live = text(world["owner"].get(f"/jobs/{job.pk}/", **HTMX))
    assert "every 1s" not in live and "Succeeded" in live and "1 of 1 steps done" in live
    assert "VM vm-" in live or "on 10.1.0." in live  # the step's log


def test_a_failed_job_shows_a_readable_error_but_no_traceback(world, catalog):
    memory.admin_request(catalog["stamp_a"]["endpoint"], "POST", "/v1/admin/faults",
                         {"fail_op_next": {"vm.create": 1}})
    vm = create_vm(world)
    [job] = run_jobs()
    assert job.state == JobState.ROLLED_BACK and job.traceback
    page = text(world["owner"].get(f"/jobs/{job.pk}/"))
    assert "The job failed and undid what it had done" in page
    assert "Step &#x27;Create and start the VM&#x27; failed" in page
    assert "Traceback" not in page
    vm.refresh_from_db()
    assert vm.state == VmState.FAILED
    # a failed VM can only be deleted
    detail = text(world["owner"].get(f"/vms/{vm.pk}/"))
    assert "Delete<" in detail and ">Start<" not in detail and "Take checkpoint" not in detail


def test_job_list_filters_and_names_what_each_job_acts_on(world, running_vm):
    owner = world["owner"]
    page = text(owner.get("/jobs/"))
    assert "Create VM web-1" in page and "Commission subscription prod" in page
    assert "Showing 1–1 of 1" in text(owner.get("/jobs/?q=vm.create"))
    assert "Showing 1–2 of 2" in text(owner.get(f"/jobs/?state=succeeded&subscription="
                                                f"{world['subscription'].pk}"))
    assert "Nothing matches these filters." in text(owner.get("/jobs/?state=failed"))


def test_the_subscription_page_lists_its_vms_and_networks(world, running_vm):
    page = text(world["owner"].get(f"/subscriptions/{world['subscription'].pk}/"))
    assert f'href="/vms/{running_vm.pk}/"' in page and "10.0.0.0/24" in page
    assert "New VM" in page and "New network" in page
    assert "being set up" not in page  # the commission has finished
    listing = text(world["owner"].get("/subscriptions/"))
    assert f'href="/vms/?subscription={world["subscription"].pk}">1</a>' in listing


def test_dashboard_shows_recent_jobs(world, running_vm):
    page = text(world["owner"].get("/"))
    assert "Recent jobs" in page and "Create VM web-1" in page
    assert "every 2s" not in page  # nothing in flight


# --- provider -------------------------------------------------------------------------

@pytest.fixture
def provider(staff):
    return browser_for(staff.email)


def test_provider_sees_every_job_with_filters(provider, world, running_vm, catalog):
    tenant = world["tenant"]
    page = text(provider.get("/admin/jobs/"))
    assert "Create VM web-1" in page and tenant.name in page
    assert "Showing 1–1 of 1" in text(provider.get("/admin/jobs/?runbook=vm.create"))
    assert "Showing 1–2 of 2" in text(provider.get(
        f"/admin/jobs/?tenant={tenant.pk}&stamp={catalog['stamp_a']['id']}&state=succeeded"))
    assert "Showing 1–2 of 2" in text(provider.get("/admin/jobs/", {"q": tenant.name}))
    assert "Nothing matches" in text(provider.get(f"/admin/jobs/?stamp={catalog['stamp_b']['id']}"))
    assert provider.get("/admin/jobs/?tenant=12&runbook=nope").status_code == 200
    # the tenant's subscription shows how many VMs it holds
    assert re.search(r'<td class="text-end">1</td>', text(provider.get("/admin/subscriptions/")))


def test_provider_retries_a_failed_job_after_confirming(provider, world, catalog):
    memory.admin_request(catalog["stamp_a"]["endpoint"], "POST", "/v1/admin/faults",
                         {"fail_op_next": {"vm.create": 1}})
    vm = create_vm(world)
    [job] = run_jobs()
    page = text(provider.get(f"/admin/jobs/{job.pk}/"))
    assert "Traceback" in page and "Retry<" in page and "Cancel<" not in page
    confirm = text(provider.get(f"/admin/jobs/{job.pk}/retry/"))
    assert "Run “vm.create” again?" in confirm and "btn-primary" in confirm
    response = provider.post(f"/admin/jobs/{job.pk}/retry/", follow=True)
    assert "queued again (run 2)" in text(response)
    [job] = run_jobs()
    vm.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and vm.state == VmState.RUNNING
    # a finished job cannot be retried: the engine's reason is shown
    again = provider.post(f"/admin/jobs/{job.pk}/retry/", follow=True)
    assert "A succeeded job cannot be retried." in text(again)


def test_provider_cancels_a_queued_job_after_confirming(provider, world):
    vm = create_vm(world)
    job = Job.objects.get(resource_id=str(vm.pk))
    assert "Cancel<" in text(provider.get(f"/admin/jobs/{job.pk}/"))
    assert "Are you sure?" in text(provider.get(f"/admin/jobs/{job.pk}/cancel/"))
    assert "was cancelled" in text(provider.post(f"/admin/jobs/{job.pk}/cancel/", follow=True))
    job.refresh_from_db()
    vm.refresh_from_db()
    assert job.state == JobState.CANCELLED and vm.state == VmState.FAILED
    assert used(world["subscription"], "vms") == 0


def test_tenants_cannot_open_the_provider_job_pages(world, running_vm):
    job = Job.objects.filter(resource_id=str(running_vm.pk)).first()
    assert world["owner"].get("/admin/jobs/").status_code == 403
    assert world["owner"].post(f"/admin/jobs/{job.pk}/cancel/").status_code == 403


# --- query counts ---------------------------------------------------------------------

def _many_vms(world, count: int) -> None:
    """``count`` more VMs on the default network, running, stopped or provisioning."""
    template = Template.objects.get(pk=world["template"]["id"])
    states = [VmState.RUNNING, VmState.STOPPED, VmState.PROVISIONING]
    prefix = unique("bulk-")
    for i in range(count):
        VirtualMachineFactory(subscription=world["subscription"], network=world["network"],
                              template=template, name=f"{prefix}{i}", state=states[i % 3],
                              ip_address=f"10.1.0.{10 + i % 200}")


def _many_jobs(world, count: int) -> None:
    """``count`` more jobs of VMs and networks in every state, each with three steps."""
    vms = list(VirtualMachine.objects.filter(subscription=world["subscription"])[:count])
    networks = list(Network.objects.filter(subscription=world["subscription"]))
    states = [JobState.SUCCEEDED, JobState.RUNNING, JobState.ROLLED_BACK, JobState.QUEUED]
    for i in range(count):
        job = JobFactory(
            runbook="vm.create" if i % 2 else "network.create",
            subscription=world["subscription"], state=states[i % 4],
            resource=vms[i % len(vms)] if i % 2 else networks[0],
            error="Step 'x' failed: boom" if states[i % 4] == JobState.ROLLED_BACK else "")
        for n in (1, 2, 3):
            JobStepFactory(job=job, index=n,
                           state=StepState.SUCCEEDED if n == 1 else StepState.PENDING)


@pytest.mark.parametrize("url", ["/vms/", "/jobs/", "/networks/", "/", "/subscriptions/"])
def test_tenant_resource_pages_do_not_grow_queries_with_rows(world, url,
                                                             django_assert_max_num_queries):
    _many_vms(world, 3)
    _many_jobs(world, 3)
    few = query_count(world["owner"], url)
    _many_vms(world, 60)
    _many_jobs(world, 60)
    for i in range(30):
        NetworkFactory(subscription=world["subscription"], name=f"n{i}",
                       cidr=f"10.{100 + i}.0.0/24", ready=True)
    with django_assert_max_num_queries(few):
        assert world["owner"].get(url).status_code == 200


@pytest.mark.parametrize("url", ["/admin/jobs/", "/admin/subscriptions/", "/admin/"])
def test_provider_job_list_does_not_grow_queries_with_rows(provider, world, url,
                                                          django_assert_max_num_queries):
    _many_vms(world, 3)
    _many_jobs(world, 3)
    few = query_count(provider, url)
    _many_vms(world, 60)
    _many_jobs(world, 120)
    with django_assert_max_num_queries(few):
        assert provider.get(url).status_code == 200


def test_vm_detail_does_not_grow_queries_with_checkpoints_and_jobs(
        world, running_vm, django_assert_max_num_queries):
    url = f"/vms/{running_vm.pk}/"
    few = query_count(world["owner"], url)
    SnapshotFactory.create_batch(20, vm=running_vm)
    with django_assert_max_num_queries(few):
        assert world["owner"].get(url).status_code == 200
