"""Who may do what in a tenant: every permission of ``tenants.rules``, asked for every kind
of caller, against the table of what each is allowed.

The table is the rule set's own answer (``rules.has_perm``). Django lets an active
superuser through every ``user.has_perm``, which is why tenant endpoints ask for a
membership before any permission: ``tests/test_api_permissions.py`` shows that at the API.
"""

import pytest
import rules
from django.contrib.auth.models import AnonymousUser

from tenants.models import Role
from tenants.tests.factories import MembershipFactory, TenantFactory, UserFactory

CALLERS = ["owner", "admin", "operator", "reader", "another tenant's owner", "staff",
           "anonymous"]

# What each caller may do with the tenant (True: allowed).
ALLOWED = {
    "tenants.view_tenant": {
        "owner": True, "admin": True, "operator": True, "reader": True,
        "another tenant's owner": False, "staff": False, "anonymous": False},
    "tenants.manage_members": {
        "owner": True, "admin": True, "operator": False, "reader": False,
        "another tenant's owner": False, "staff": False, "anonymous": False},
    "plans.manage_subscriptions": {
        "owner": True, "admin": True, "operator": False, "reader": False,
        "another tenant's owner": False, "staff": False, "anonymous": False},
    "provisioning.operate": {
        "owner": True, "admin": True, "operator": True, "reader": False,
        "another tenant's owner": False, "staff": False, "anonymous": False},
    "provisioning.approve_task_runs": {
        "owner": True, "admin": True, "operator": False, "reader": False,
        "another tenant's owner": False, "staff": False, "anonymous": False},
    "portal.provider": {
        "owner": False, "admin": False, "operator": False, "reader": False,
        "another tenant's owner": False, "staff": True, "anonymous": False},
}
CASES = [(permission, caller, allowed[caller])
         for permission, allowed in ALLOWED.items() for caller in CALLERS]


def caller_of(tenant, caller: str):
    """The user who plays ``caller`` towards ``tenant``."""
    if caller == "anonymous":
        return AnonymousUser()
    if caller == "staff":
        return UserFactory(staff=True)
    if caller == "another tenant's owner":
        return MembershipFactory(role=Role.OWNER).user
    return MembershipFactory(tenant=tenant, role=Role(caller)).user


def test_the_table_names_every_permission_of_the_rule_set():
    # given the permissions the project declares (tenants.rules)
    declared = set(rules.permissions.permissions)
    # then each has a row, for every caller
    assert declared == set(ALLOWED)
    assert all(set(row) == set(CALLERS) for row in ALLOWED.values())


@pytest.mark.django_db
@pytest.mark.parametrize("permission, caller, allowed", CASES)
def test_each_caller_gets_what_its_role_allows(permission, caller, allowed):
    # given a tenant and someone playing the caller's part
    tenant = TenantFactory()
    user = caller_of(tenant, caller)
    # when the rule set is asked
    answer = rules.has_perm(permission, user, tenant)
    # then it answers as the table says
    assert answer is allowed


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.READER])
def test_a_role_gives_nothing_in_another_tenant(role):
    # given a member of one tenant
    user = MembershipFactory(role=role).user
    # when asked about any other tenant, or about no tenant at all
    elsewhere = TenantFactory()
    # then every tenant permission is refused
    for permission in ALLOWED:
        assert not rules.has_perm(permission, user, elsewhere), permission
        assert not rules.has_perm(permission, user, None), permission


@pytest.mark.django_db
def test_user_has_perm_asks_the_rule_set():
    # given an operator
    membership = MembershipFactory(operator=True)
    user, tenant = membership.user, membership.tenant
    # when Django's permission check is asked, as the API and the web UI do
    # then the rules backend answers it
    assert user.has_perm("provisioning.operate", tenant)
    assert not user.has_perm("plans.manage_subscriptions", tenant)
    assert not user.has_perm("portal.provider", None)
