"""Invitations as use cases, without the API: who gets one, what accepting does, and what
the database itself refuses."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.db import IntegrityError, transaction

from base.errors import ErrorCode, Forbidden, Invalid
from tenants import services
from tenants.models import Invitation, InvitationState, Membership, Role, hash_token
from tenants.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SITE = "http://portal.example/"
PASSWORD = "an invited long password"


class BrokenMailServer(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ConnectionRefusedError("the mail server is down")


def invite(owner: Membership, email: str, role: Role = Role.OPERATOR) -> services.AddedMember:
    return services.add_member(owner.tenant, email=email, role=role, acting_user=owner.user,
                               site_url=SITE)


def test_an_invited_person_cannot_log_in_until_they_accept(time_machine):
    # given an owner, at nine
    time_machine.move_to(NINE, tick=False)
    owner = MembershipFactory(owner=True)
    # when the owner invites someone without an account
    added = invite(owner, "ivy@example.com")
    # then the person has an account that is inactive and has no password
    person = added.membership.user
    assert not person.is_active and not person.has_usable_password()
    assert added.invitation.url == f"http://portal.example/invitations/{added.invitation.token}/"
    assert added.invitation.invitation.expires_at == NINE + timedelta(days=7)
    # when they accept it an hour later
    time_machine.shift(timedelta(hours=1))
    membership = services.accept_invitation(token=added.invitation.token, password=PASSWORD)
    # then the account is active with that password, and the invitation is spent
    person.refresh_from_db()
    assert membership.user == person and person.is_active and person.check_password(PASSWORD)
    invitation = Invitation.objects.get(membership=membership)
    assert invitation.state == InvitationState.ACCEPTED
    assert invitation.accepted_at == NINE + timedelta(hours=1)


def test_the_public_url_setting_makes_the_links(settings):
    settings.BUFFET_PUBLIC_URL = "https://cloud.example.com"
    added = invite(MembershipFactory(owner=True), "far@example.com")
    assert added.invitation.url.startswith("https://cloud.example.com/invitations/bfi_")


def test_the_email_leaves_only_once_the_invitation_is_committed(
        mailoutbox, django_capture_on_commit_callbacks):
    owner = MembershipFactory(owner=True)
    # when an invitation is made in a transaction that is then rolled back
    with (django_capture_on_commit_callbacks(execute=True) as callbacks,
          pytest.raises(RuntimeError), transaction.atomic()):
        invite(owner, "never@example.com")
        raise RuntimeError("the request failed after the invitation")
    # then no email left, and nothing of the invitation stayed
    assert callbacks == [] and mailoutbox == []
    assert not Membership.objects.filter(user__email="never@example.com").exists()


def test_a_mail_server_that_fails_does_not_undo_the_invitation(
        settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = f"{__name__}.BrokenMailServer"
    owner = MembershipFactory(owner=True)
    with django_capture_on_commit_callbacks(execute=True):
        added = invite(owner, "offline@example.com")
    # the inviter still holds a link that works
    assert services.accept_invitation(token=added.invitation.token, password=PASSWORD)


def test_an_admin_cannot_invite_an_owner_and_nothing_is_left_behind():
    admin = MembershipFactory(admin=True)
    with pytest.raises(Forbidden):
        invite(admin, "boss@example.com", Role.OWNER)
    assert not Membership.objects.filter(user__email="boss@example.com").exists()
    assert not Invitation.objects.exists()


def test_inviting_again_replaces_the_pending_invitation():
    owner = MembershipFactory(owner=True)
    first = invite(owner, "twice@example.com")
    second = invite(owner, "twice@example.com", Role.READER)
    assert second.membership.pk == first.membership.pk
    assert second.membership.role == Role.READER
    states = dict(Invitation.objects.values_list("digest", "state"))
    assert states == {hash_token(first.invitation.token): InvitationState.REPLACED,
                      hash_token(second.invitation.token): InvitationState.PENDING}
    with pytest.raises(Invalid) as refused:
        services.accept_invitation(token=first.invitation.token, password=PASSWORD)
    assert refused.value.code == ErrorCode.INVITATION_REPLACED


def test_the_database_keeps_one_pending_invitation_per_member():
    # given a member with a pending invitation
    added = invite(MembershipFactory(owner=True), "one@example.com")
    # when a second pending one is written around the service
    with pytest.raises(IntegrityError), transaction.atomic():
        Invitation.objects.create(membership=added.membership, digest="0" * 64,
                                  expires_at=added.invitation.invitation.expires_at)
    # then the constraint refused it
    assert Invitation.objects.filter(membership=added.membership).count() == 1


def test_a_person_with_an_account_is_added_directly():
    person = UserFactory()
    added = invite(MembershipFactory(owner=True), person.email.upper(), Role.READER)
    assert added.invitation is None
    assert added.membership.user == person and added.membership.role == Role.READER
