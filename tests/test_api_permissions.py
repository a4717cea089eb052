"""Every tenant permission at the API: one representative endpoint each, called by every
kind of caller, with the status each must get and nothing done when it is refused.

Another tenant's owner passes its own tenant's permissions but never finds this tenant's
objects (404, or a 400 naming the field of a body that points at one); staff are no
tenant's members (403); an anonymous caller must authenticate (401). The rule set's own
table is ``tenants/tests/test_permissions.py``.
"""

from dataclasses import dataclass

import pytest
import rules
from rest_framework.test import APIClient

from fabric.models import Stamp
from plans.tests.factories import AddOnFactory, PlanFactory
from provisioning.models import Network
from provisioning.tests.factories import CommissionedSubscriptionFactory
from tenants.models import Membership, Role
from tenants.tests.factories import MembershipFactory, TenantFactory, UserFactory, token_key

CALLERS = ["owner", "admin", "operator", "reader", "another tenant's owner", "staff",
           "anonymous"]


@dataclass
class World:
    """A tenant with a commissioned subscription whose plan offers a quota add-on, and a
    reader colleague whose role can be changed."""

    tenant: object
    subscription: object
    addon: object
    colleague: Membership


@pytest.fixture
def world(db) -> World:
    tenant = TenantFactory()
    addon = AddOnFactory()
    subscription = CommissionedSubscriptionFactory(tenant=tenant,
                                                   plan=PlanFactory(addons=[addon]))
    return World(tenant, subscription, addon, MembershipFactory(tenant=tenant, reader=True))


def client_of(world: World, caller: str) -> APIClient:
    client = APIClient()
    if caller == "anonymous":
        return client
    if caller == "staff":
        user = UserFactory(staff=True)
    elif caller == "another tenant's owner":
        user = MembershipFactory(owner=True).user
    else:
        user = MembershipFactory(tenant=world.tenant, role=Role(caller)).user
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_key(user)}")
    return client


# --- the calls, and how to tell that they did something --------------------------------

def view_subscription(client, w: World):
    return client.get(f"/api/v1/subscriptions/{w.subscription.pk}/")


def change_a_role(client, w: World):
    return client.patch(f"/api/v1/tenant/members/{w.colleague.pk}/", {"role": "operator"},
                        format="json")


def role_changed(w: World) -> bool:
    return Membership.objects.get(pk=w.colleague.pk).role == Role.OPERATOR


def attach_an_addon(client, w: World):
    return client.post(f"/api/v1/subscriptions/{w.subscription.pk}/addons/",
                       {"addon": str(w.addon.pk)}, format="json")


def addon_attached(w: World) -> bool:
    return w.subscription.addon_links.filter(addon=w.addon).exists()


def create_a_network(client, w: World):
    return client.post("/api/v1/networks/", {"subscription": str(w.subscription.pk),
                                             "name": "app", "cidr": "10.2.0.0/24"},
                       format="json")


def network_created(w: World) -> bool:
    return Network.objects.filter(subscription=w.subscription, name="app").exists()


def reject_a_task_run(client, w: World):
    from provisioning.models import Task, TaskRun, TaskRunState

    task = Task.objects.create(slug="held", title="Held", runbook="task.collect-diagnostics",
                               requires_approval=True)
    run = TaskRun.objects.create(task=task, tenant=w.tenant, subscription=w.subscription,
                                 state=TaskRunState.PENDING_APPROVAL)
    return client.post(f"/api/v1/task-runs/{run.pk}/reject/")


def task_run_rejected(w: World) -> bool:
    from provisioning.models import TaskRun

    return TaskRun.objects.filter(subscription=w.subscription, state="rejected").exists()


def register_a_stamp(client, w: World):
    return client.post("/api/v1/admin/stamps/", {
        "name": "stamp-new", "region": "east", "driver": "memory", "endpoint": "mem://new"},
        format="json")


def stamp_registered(w: World) -> bool:
    return Stamp.objects.filter(name="stamp-new").exists()


ENDPOINTS = {
    # permission: (call, did it act, status per caller)
    "tenants.view_tenant": (view_subscription, None, {
        "owner": 200, "admin": 200, "operator": 200, "reader": 200,
        "another tenant's owner": 404, "staff": 403, "anonymous": 401}),
    "tenants.manage_members": (change_a_role, role_changed, {
        "owner": 200, "admin": 200, "operator": 403, "reader": 403,
        "another tenant's owner": 404, "staff": 403, "anonymous": 401}),
    "plans.manage_subscriptions": (attach_an_addon, addon_attached, {
        "owner": 201, "admin": 201, "operator": 403, "reader": 403,
        "another tenant's owner": 404, "staff": 403, "anonymous": 401}),
    "provisioning.operate": (create_a_network, network_created, {
        "owner": 202, "admin": 202, "operator": 202, "reader": 403,
        "another tenant's owner": 400, "staff": 403, "anonymous": 401}),
    "provisioning.approve_task_runs": (reject_a_task_run, task_run_rejected, {
        "owner": 200, "admin": 200, "operator": 403, "reader": 403,
        "another tenant's owner": 404, "staff": 403, "anonymous": 401}),
    "portal.provider": (register_a_stamp, stamp_registered, {
        "owner": 403, "admin": 403, "operator": 403, "reader": 403,
        "another tenant's owner": 403, "staff": 201, "anonymous": 401}),
}
CASES = [pytest.param(permission, caller, statuses[caller], id=f"{permission}-{caller}")
         for permission, (_, _, statuses) in ENDPOINTS.items() for caller in CALLERS]


def test_every_permission_of_the_rule_set_has_an_endpoint():
    # given the permissions the project declares (tenants.rules)
    # then each has an endpoint here, with a status for every caller
    assert set(ENDPOINTS) == set(rules.permissions.permissions)
    assert all(set(statuses) == set(CALLERS) for _, _, statuses in ENDPOINTS.values())


@pytest.mark.parametrize("permission, caller, status", CASES)
def test_each_caller_gets_the_status_its_role_allows(world, permission, caller, status):
    # given the tenant's world and a caller
    call, acted, _ = ENDPOINTS[permission]
    client = client_of(world, caller)
    # when it calls the permission's endpoint
    response = call(client, world)
    # then it gets the status of the table, and only an allowed call did anything
    assert response.status_code == status, response.content
    if status >= 400:
        assert response["Content-Type"] == "application/problem+json"
    if acted is not None:
        assert acted(world) is (status < 400)
