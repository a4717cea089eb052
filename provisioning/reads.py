"""What a VM create reads, and what a change of a VM reads, each in one statement.

A create needs the subscription with its plan, the template (if the plan offers it), the
network (the one named, or the default), the subscription's active site with its cloud
and stamp, and whether a live VM already has the name. The ORM's three queries for them
cost a third of a create's CPU to build, several times what the database takes to run
them; this is the same read written once, on PostgreSQL and SQLite alike. A change of a
VM (delete, power, resize) reads the VM under lock with its subscription and plan, its
template and the subscription's active site, where the ORM took two queries. A step of
a VM's job reads the VM with its network, template, subscription and plan (and, for a
create, the site it is placed on), where the ORM took two.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection

from base import prepared
from base.selection import Part, Selection
from fabric.models import Cloud, Stamp, Template
from plans.models import Plan, Subscription, SubscriptionState
from provisioning.models import Network, NetworkState, Site, SiteState, VirtualMachine, VmState

__all__ = ["VmChangeReads", "VmCreateReads", "vm_change_reads", "vm_create_reads",
           "vm_step_reads"]


@dataclass(frozen=True)
class VmCreateReads:
    subscription: Subscription  # with its plan
    template: object | None  # a Template of the plan, or None
    network: Network | None  # with ``active_site`` (its cloud and stamp) or None
    name_taken: bool


# The stamp's credentials are decrypted only if a caller reads them (none does here).
_SELECTION = Selection(Part(Subscription, "s"), Part(Plan, "p"), Part(Template, "t"),
                       Part(Network, "n"), Part(Site, "si"), Part(Cloud, "c"),
                       Part(Stamp, "st", defer=("credentials",)))
_STATEMENTS: dict[tuple, str] = {}


def _statement(*, default_network: bool, tenant: bool) -> str:
    key = (connection.vendor, default_network, tenant)
    if key not in _STATEMENTS:
        quote = connection.ops.quote_name
        templates = Plan.templates.field
        through = templates.remote_field.through._meta.db_table
        network = ("n.is_default" if default_network else "n.id = %(network)s")
        _STATEMENTS[key] = (
            f"SELECT {_SELECTION.columns(connection)}, EXISTS (SELECT 1 FROM "  # noqa: S608
            f"{quote(VirtualMachine._meta.db_table)} v WHERE v.subscription_id = s.id"
            "  AND v.name = %(name)s AND v.state <> %(vm_deleted)s) "
            f"FROM {quote(Subscription._meta.db_table)} s "
            f"JOIN {quote(Plan._meta.db_table)} p ON p.id = s.plan_id "
            f"LEFT JOIN {quote(through)} pt ON pt.{quote(templates.m2m_column_name())} = p.id"
            f"  AND pt.{quote(templates.m2m_reverse_name())} = %(template)s "
            f"LEFT JOIN {quote(Template._meta.db_table)} t"
            f"  ON t.id = pt.{quote(templates.m2m_reverse_name())} "
            f"LEFT JOIN {quote(Network._meta.db_table)} n ON n.subscription_id = s.id"
            f"  AND n.state <> %(network_deleted)s AND {network} "
            f"LEFT JOIN {quote(Site._meta.db_table)} si ON si.subscription_id = s.id"
            "  AND si.is_active AND si.state <> %(site_deleted)s "
            f"LEFT JOIN {quote(Cloud._meta.db_table)} c ON c.id = si.cloud_id "
            f"LEFT JOIN {quote(Stamp._meta.db_table)} st ON st.id = c.stamp_id "
            "WHERE s.id = %(subscription)s"
            + (" AND s.tenant_id = %(tenant)s AND s.state <> %(subscription_deleted)s"
               if tenant else ""))
    return _STATEMENTS[key]


def _uuid(model, value):
    return model._meta.pk.get_db_prep_value(value, connection)


def vm_create_reads(subscription_id, *, template_id, network_id, name: str, tenant=None
                    ) -> VmCreateReads | None:
    """What a create of ``name`` from ``template_id`` on ``network_id`` (None: the default
    network) reads; None when there is no such subscription (with ``tenant``: of the
    tenant's, and not deleted)."""
    params = {"subscription": _uuid(Subscription, subscription_id),
              "template": _uuid(Template, template_id), "name": name,
              "vm_deleted": VmState.DELETED, "network_deleted": NetworkState.DELETED,
              "site_deleted": SiteState.DELETED}
    if network_id is not None:
        params["network"] = _uuid(Network, network_id)
    if tenant is not None:
        params.update(tenant=_uuid(type(tenant), tenant.pk),
                      subscription_deleted=SubscriptionState.DELETED)
    statement = _statement(default_network=network_id is None, tenant=tenant is not None)
    read = _one(statement, params, _SELECTION)
    if read is None:
        return None
    subscription, plan, template, network, site, cloud, stamp, name_taken = read
    subscription.plan = plan
    _link_site(site, cloud, stamp, subscription)
    if network is not None:
        network.subscription = subscription
        network.active_site = site
    return VmCreateReads(subscription=subscription, template=template, network=network,
                         name_taken=bool(name_taken))


@dataclass(frozen=True)
class VmChangeReads:
    vm: VirtualMachine  # with its subscription (and plan) and template, locked
    site: Site | None  # the subscription's active site with its cloud and stamp, or None


_CHANGE_SELECTION = Selection(Part(VirtualMachine, "v"), Part(Subscription, "s"),
                              Part(Plan, "p"), Part(Template, "t"), Part(Site, "si"),
                              Part(Cloud, "c"), Part(Stamp, "st", defer=("credentials",)))


def _change_statement(*, tenant: bool) -> str:
    key = ("change", connection.vendor, tenant)
    if key not in _STATEMENTS:
        quote = connection.ops.quote_name
        # Only the VM's row is locked: the joined rows are read as they are.
        lock = " FOR UPDATE OF v" if connection.features.has_select_for_update_of else ""
        _STATEMENTS[key] = (
            f"SELECT {_CHANGE_SELECTION.columns(connection)} "  # noqa: S608
            f"FROM {quote(VirtualMachine._meta.db_table)} v "
            f"JOIN {quote(Subscription._meta.db_table)} s ON s.id = v.subscription_id "
            f"JOIN {quote(Plan._meta.db_table)} p ON p.id = s.plan_id "
            f"JOIN {quote(Template._meta.db_table)} t ON t.id = v.template_id "
            f"LEFT JOIN {quote(Site._meta.db_table)} si ON si.subscription_id = s.id"
            "  AND si.is_active AND si.state <> %(site_deleted)s "
            f"LEFT JOIN {quote(Cloud._meta.db_table)} c ON c.id = si.cloud_id "
            f"LEFT JOIN {quote(Stamp._meta.db_table)} st ON st.id = c.stamp_id "
            "WHERE v.id = %(vm)s"
            + (" AND s.tenant_id = %(tenant)s AND v.state <> %(vm_deleted)s" if tenant else "")
            + lock)
    return _STATEMENTS[key]


def vm_change_reads(vm_id, *, tenant=None) -> VmChangeReads | None:
    """The VM ``vm_id``, its row locked until the transaction ends (where the database
    locks rows), with what a change of it needs; None when there is no such VM (with
    ``tenant``: of the tenant's, and not deleted)."""
    try:
        params = {"vm": _uuid(VirtualMachine, vm_id), "site_deleted": SiteState.DELETED}
    except ValidationError:
        return None  # not a VM's id at all
    if tenant is not None:
        params.update(tenant=_uuid(type(tenant), tenant.pk), vm_deleted=VmState.DELETED)
    read = _one(_change_statement(tenant=tenant is not None), params, _CHANGE_SELECTION)
    if read is None:
        return None
    vm, subscription, plan, template, site, cloud, stamp = read
    subscription.plan = plan
    vm.subscription = subscription
    vm.template = template
    _link_site(site, cloud, stamp, subscription)
    return VmChangeReads(vm=vm, site=site)


_STEP_SELECTION = Selection(Part(VirtualMachine, "v"), Part(Network, "n"), Part(Template, "t"),
                            Part(Subscription, "s"), Part(Plan, "p"), Part(Site, "si"))


def _step_statement(*, site: bool) -> str:
    key = ("step", connection.vendor, site)
    if key not in _STATEMENTS:
        quote = connection.ops.quote_name
        _STATEMENTS[key] = (
            f"SELECT {_STEP_SELECTION.columns(connection)} "  # noqa: S608
            f"FROM {quote(VirtualMachine._meta.db_table)} v "
            f"JOIN {quote(Network._meta.db_table)} n ON n.id = v.network_id "
            f"JOIN {quote(Template._meta.db_table)} t ON t.id = v.template_id "
            f"JOIN {quote(Subscription._meta.db_table)} s ON s.id = v.subscription_id "
            f"JOIN {quote(Plan._meta.db_table)} p ON p.id = s.plan_id "
            f"LEFT JOIN {quote(Site._meta.db_table)} si ON "
            + ("si.id = %(site)s " if site else "false ")
            + "WHERE v.id = %(vm)s")
    return _STATEMENTS[key]


def vm_step_reads(vm_id, *, site_id=None) -> tuple[VirtualMachine, Site | None]:
    """The VM ``vm_id`` as a step of its job reads it, unlocked: with its network, its
    template and its subscription and plan; and the site ``site_id`` (None: no site read).
    ``VirtualMachine.DoesNotExist`` or ``Site.DoesNotExist``, as the ORM's ``get``, when
    either is not there."""
    params = {"vm": _uuid(VirtualMachine, vm_id)}
    if site_id is not None:
        params["site"] = _uuid(Site, site_id)
    read = _one(_step_statement(site=site_id is not None), params, _STEP_SELECTION)
    if read is None:
        raise VirtualMachine.DoesNotExist(f"No VM {vm_id}.")
    vm, network, template, subscription, plan, site = read
    if site_id is not None and site is None:
        raise Site.DoesNotExist(f"No site {site_id}.")
    subscription.plan = plan
    vm.network, vm.template, vm.subscription = network, template, subscription
    return vm, site


def _one(statement: str, params: dict, selection: Selection) -> list | None:
    """The instances of the statement's one row, or None when it found none."""
    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, params)
        row = cursor.fetchone()
    return None if row is None else selection.read(row, connection)


def _link_site(site: Site | None, cloud, stamp, subscription) -> None:
    """The site as ``select_related`` would give it: with its cloud and stamp."""
    if site is not None:
        cloud.stamp = stamp
        site.cloud = cloud
        site.subscription = subscription
