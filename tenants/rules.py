"""Who may do what in a tenant: the one permission layer (django-rules).

Every permission takes the tenant as its object. Provider staff pass the
``admin.*`` permissions; tenant roles never reach them.
"""

import rules

from tenants.models import Role

__all__ = ["role_at_least"]

_RANK = {Role.READER: 0, Role.OPERATOR: 1, Role.ADMIN: 2, Role.OWNER: 3}


def role_at_least(minimum: Role):
    @rules.predicate(name=f"role_at_least_{minimum}")
    def predicate(user, tenant) -> bool:
        membership = getattr(user, "membership", None)
        if membership is None or tenant is None or membership.tenant_id != tenant.pk:
            return False
        return _RANK[Role(membership.role)] >= _RANK[minimum]

    return predicate


is_member = role_at_least(Role.READER)
is_operator = role_at_least(Role.OPERATOR)
is_admin = role_at_least(Role.ADMIN)
is_owner = role_at_least(Role.OWNER)
is_staff = rules.is_staff

# Reading anything of the tenant.
rules.add_perm("tenants.view_tenant", is_member)
# Members and tokens of the organisation.
rules.add_perm("tenants.manage_members", is_admin)
# Subscriptions and add-ons cost money: owners and admins.
rules.add_perm("plans.manage_subscriptions", is_admin)
# VMs, networks, snapshots, tasks: day-to-day operation.
rules.add_perm("provisioning.operate", is_operator)
# Runs of self-service tasks that need approval: owners and admins decide.
rules.add_perm("provisioning.approve_task_runs", is_admin)
# The provider's side.
rules.add_perm("portal.provider", is_staff)
