"""Factories of the tenants' model world: people, organisations and their roles.

Every app keeps the factories of its own models in ``<app>/tests/factories.py``. They
live in the app's layer, so import-linter holds them to the layers of DESIGN.md like the
code they build on: a plans factory may make a fabric cloud, a fabric factory never makes
a plan. Black-box API tests keep building their world through the API (``conftest.py``'s
``signup``, ``staff`` and ``catalog``); these factories are for tests of the model world.

    MembershipFactory(role=Role.READER, tenant=tenant)
    MembershipFactory(operator=True)          # a new tenant with one operator
    UserFactory(staff=True)                   # a provider administrator, with TOTP
    totp_code(user)                           # the code of its authenticator app now
"""

import factory
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from factory.django import DjangoModelFactory, Password

from tenants import services
from tenants.models import Membership, Role, Tenant, User

__all__ = ["PASSWORD", "MembershipFactory", "TenantFactory", "UserFactory", "enrol_totp",
           "token_key", "totp_code"]

PASSWORD = "a long password 1"


class UserFactory(DjangoModelFactory):
    """A person who can log in with ``PASSWORD``; ``staff=True`` makes a provider
    administrator, as ``createsuperuser`` and the demo do."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    full_name = factory.Sequence(lambda n: f"Person {n}")
    password = Password(PASSWORD)

    class Params:
        staff = factory.Trait(
            email=factory.Sequence(lambda n: f"admin{n}@provider.example"),
            is_staff=True, is_superuser=True)

    @factory.post_generation
    def two_factor(self, create, extracted, **kwargs):
        """Staff have an authenticator app, as the provider portal demands; anyone with
        ``two_factor=True``, too."""
        if create and (self.is_staff if extracted is None else extracted):
            enrol_totp(self)


class TenantFactory(DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Organisation {n}")


class MembershipFactory(DjangoModelFactory):
    """A user's role in a tenant (owner unless told): ``MembershipFactory(reader=True)``
    or ``MembershipFactory(role=role)``."""

    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.OWNER

    class Params:
        owner = factory.Trait(role=Role.OWNER)
        admin = factory.Trait(role=Role.ADMIN)
        operator = factory.Trait(role=Role.OPERATOR)
        reader = factory.Trait(role=Role.READER)


def token_key(user: User) -> str:
    """A new API token's key for ``user``, issued by the service (only its digest is
    stored, so the key cannot come from a factory)."""
    return services.issue_token(user).key


def enrol_totp(user: User) -> TOTPDevice:
    """A confirmed authenticator app for ``user`` (its secret is random)."""
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def totp_code(user: User) -> str:
    """The code the user's authenticator app shows now.

    A code works once and wrong codes slow the next tries down; a person waits for the
    next code, a test cannot, so the device forgets both before each code is made.
    """
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    TOTPDevice.objects.filter(pk=device.pk).update(
        last_t=-1, throttling_failure_count=0, throttling_failure_timestamp=None)
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
