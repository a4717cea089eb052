"""What an add-on does beyond quota, declared where provisioning can call it.

The subscription lifecycle (``provisioning.lifecycle``) and the VM runbooks call these
hooks by name at fixed points: before and after an add-on is attached or detached, and
when a VM of the subscription is created or deleted. Add-ons live in layers above
provisioning, which cannot import them; an add-on app registers its hooks for its
``AddOnKind`` when Django starts (``dr_addon.apps``). A kind without hooks does nothing
more than its quota.
"""

from functools import cache
from typing import TYPE_CHECKING, Protocol

from django.db import connection

from base import prepared
from plans.models import AddOn, AddOnKind, Subscription, SubscriptionAddOn

if TYPE_CHECKING:
    from provisioning.models import Job

__all__ = ["AddOnHooks", "hooks_for", "register", "vm_created", "vm_deleted"]


class AddOnHooks(Protocol):
    def check_attach(self, subscription: Subscription, addon: AddOn) -> None:
        """Raise a ``ServiceError`` if the add-on cannot be attached now."""

    def attached(self, link: SubscriptionAddOn, *, acting_user) -> "Job | None":
        """The link is saved (same transaction): start what the add-on does; the job
        that does it, if any."""

    def check_detach(self, link: SubscriptionAddOn) -> None:
        """Raise a ``ServiceError`` if the add-on cannot be detached now."""

    def detached(self, link: SubscriptionAddOn, *, acting_user) -> None:
        """The link is gone (same transaction): undo what the add-on does."""

    def vm_created(self, vm) -> None:
        """A VM of a subscription with this add-on was created on the fabric."""

    def vm_deleted(self, vm) -> None:
        """A VM of a subscription with this add-on was deleted from the fabric."""


class _QuotaOnly:
    """An add-on that only adds quota."""

    def check_attach(self, subscription, addon) -> None:
        pass

    def attached(self, link, *, acting_user) -> None:
        return None

    def check_detach(self, link) -> None:
        pass

    def detached(self, link, *, acting_user) -> None:
        pass

    def vm_created(self, vm) -> None:
        pass

    def vm_deleted(self, vm) -> None:
        pass


_QUOTA_ONLY = _QuotaOnly()
_HOOKS: dict[AddOnKind, AddOnHooks] = {}


def register(kind: AddOnKind, hooks: AddOnHooks) -> None:
    _HOOKS[AddOnKind(kind)] = hooks


def hooks_for(kind: str) -> AddOnHooks:
    return _HOOKS.get(AddOnKind(kind), _QUOTA_ONLY)


@cache
def _kinds_statement(vendor: str) -> str:
    """The kinds of the add-ons attached to a subscription, written once a database."""
    quote = connection.ops.quote_name
    link, addon = SubscriptionAddOn._meta, AddOn._meta
    return (f"SELECT a.{quote(addon.get_field('kind').column)} "  # noqa: S608
            f"FROM {quote(link.db_table)} l JOIN {quote(addon.db_table)} a"
            f"  ON a.{quote(addon.pk.column)} = l.{quote(link.get_field('addon').column)} "
            f"WHERE l.{quote(link.get_field('subscription').column)} = %s")


def _attached_kinds(subscription_id) -> set[str]:
    # Read at the end of every VM create job: prepared on PostgreSQL.
    value = Subscription._meta.pk.get_db_prep_value(subscription_id, connection)
    with connection.cursor() as cursor:
        prepared.execute(cursor, _kinds_statement(connection.vendor), [value])
        return {kind for (kind,) in cursor.fetchall()}


def vm_created(vm) -> None:
    for kind in sorted(_attached_kinds(vm.subscription_id)):
        hooks_for(kind).vm_created(vm)


def vm_deleted(vm) -> None:
    # Every registered kind, attached or not: a detached add-on may still hold rows of it.
    for hooks in _HOOKS.values():
        hooks.vm_deleted(vm)
