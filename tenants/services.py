"""Use cases of tenancy: sign-up, tokens, members and their invitations. The only place
that changes them."""

from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from base import events
from base.errors import Conflict, ErrorCode, Forbidden, Invalid
from base.events import Event
from tenants import emails
from tenants.models import (
    ApiToken,
    Invitation,
    InvitationState,
    Membership,
    Role,
    Tenant,
    User,
    hash_token,
)

ROLES = ", ".join(Role.values)

__all__ = [
    "AddedMember",
    "IssuedInvitation",
    "IssuedToken",
    "accept_invitation",
    "add_member",
    "authenticate_token",
    "change_role",
    "find_invitation",
    "issue_token",
    "remove_member",
    "revoke_token",
    "sign_up",
]


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown once, never stored


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown to the inviter once and sent by email, never stored
    url: str  # the web page where the person accepts it


@dataclass(frozen=True)
class AddedMember:
    membership: Membership
    invitation: IssuedInvitation | None  # None: the person already had an account


@transaction.atomic
def sign_up(*, email: str, password: str, tenant_name: str, full_name: str = "") -> Membership:
    """Create a user and a tenant the user owns.

    The tenant's name is not checked against other tenants: names need not be unique, and
    an answer that depended on them would tell anyone which organisations exist.
    """
    email = User.objects.normalize_email(email).lower()
    errors: dict[str, list[str]] = {}
    if User.objects.filter(email__iexact=email).exists():
        errors["email"] = ["This email is already registered."]
    try:
        validate_password(password, User(email=email, full_name=full_name))
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise Invalid("The sign-up cannot be accepted.", errors=errors)
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, password, full_name=full_name)
            tenant = Tenant.objects.create(name=tenant_name.strip())
    except IntegrityError as exc:  # a concurrent sign-up took the email
        raise Conflict("This email was just registered.",
                       errors={"email": ["This email is already registered."]}) from exc
    return Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)


def issue_token(user: User, *, name: str = "api") -> IssuedToken:
    key = ApiToken.new_key()
    token = ApiToken.objects.create(user=user, name=name or "api", digest=hash_token(key),
                                    hint=key[:10])
    return IssuedToken(token=token, key=key)


def revoke_token(token: ApiToken, *, acting_user: User) -> None:
    if token.user_id != acting_user.pk:
        raise Forbidden("You can only revoke your own tokens.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def authenticate_token(key: str) -> ApiToken | None:
    token = (ApiToken.objects.select_related("user", "user__tenant_membership__tenant")
             .filter(digest=hash_token(key), revoked_at__isnull=True).first())
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # Touch at most once a minute: a token used in a tight loop must not write every call.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def _check_can_grant(acting: Membership | None, role: str) -> None:
    if role == Role.OWNER and (acting is None or acting.role != Role.OWNER):
        raise Forbidden("Only an owner can make another owner.")


@transaction.atomic
def add_member(tenant: Tenant, *, email: str, role: str, acting_user: User,
               site_url: str) -> AddedMember:
    """Add a person to the tenant.

    A person with an account is a member at once. A person without one gets an account
    that stays inactive until they accept the invitation sent to them by email (its link
    starts with ``BUFFET_PUBLIC_URL``, else ``site_url``). Adding again a member whose
    invitation is still open sends a new one in its place, with the role now asked for.
    """
    if role not in Role.values:
        raise Invalid("Unknown role.", errors={"role": [f"Choose one of {ROLES}."]})
    _check_can_grant(acting_user.membership, role)
    email = User.objects.normalize_email(email).lower()
    user = User.objects.select_for_update().filter(email__iexact=email).first()
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email, is_active=False)
        except IntegrityError as exc:  # a concurrent request added the same address
            raise Conflict("This person was just added; try again.",
                           errors={"email": ["This person was just added."]}) from exc
    elif user.is_staff:
        raise Conflict("Provider staff cannot be tenant members.",
                       errors={"email": ["This address belongs to provider staff."]})
    membership = Membership.objects.filter(user=user).select_related("tenant").first()
    if membership is None:
        membership = Membership.objects.create(user=user, tenant=tenant, role=role)
    elif membership.tenant_id == tenant.pk and not user.has_usable_password():
        if membership.role != role:
            membership = change_role(membership, role=role, acting_user=acting_user)
    else:
        # Never reveal which other tenant the person belongs to.
        detail = ("This person is already a member." if membership.tenant_id == tenant.pk
                  else "This person already belongs to another organisation.")
        raise Conflict(detail, errors={"email": [detail]})
    if user.has_usable_password():
        return AddedMember(membership=membership, invitation=None)
    return AddedMember(membership=membership,
                       invitation=_invite(membership, acting_user=acting_user,
                                          site_url=site_url))


def _invite(membership: Membership, *, acting_user: User, site_url: str) -> IssuedInvitation:
    # The member's row lock makes two invitations at once wait for each other: the second
    # then replaces the first instead of breaking the one-pending-invitation constraint.
    membership = (Membership.objects.select_for_update().select_related("user", "tenant")
                  .get(pk=membership.pk))
    replaced = 0
    for older in Invitation.objects.filter(membership=membership,
                                           state=InvitationState.PENDING):
        older.replace()
        older.save()
        replaced += 1
    token = Invitation.new_token()
    invitation = Invitation.objects.create(
        membership=membership, digest=hash_token(token), invited_by=acting_user,
        expires_at=timezone.now() + timedelta(hours=settings.BUFFET_INVITATION_TTL_HOURS))
    base = settings.BUFFET_PUBLIC_URL or site_url
    url = base.rstrip("/") + reverse("invitation_accept", kwargs={"token": token})
    events.record(Event.INVITATION_CREATED, invitation, acting_user=acting_user,
                  email=membership.user.email, role=membership.role, replaced=replaced)
    # Sent by this process after commit, not by a worker: the token must not wait in the
    # broker in clear. A mail server that fails is logged; the inviter still has the link.
    email = {"email": membership.user.email, "tenant_name": membership.tenant.name,
             "role": Role(membership.role).label.lower(),
             "inviter": acting_user.full_name or acting_user.email, "url": url,
             "expires_at": invitation.expires_at}

    def send_invitation_email():  # a function, not a partial: a robust hook logs its name
        emails.send_invitation(**email)

    transaction.on_commit(send_invitation_email, robust=True)
    return IssuedInvitation(invitation=invitation, token=token, url=url)


def find_invitation(token: str) -> Invitation:
    """The pending invitation of this token, or ``Invalid`` saying why it cannot be used."""
    invitation = (Invitation.objects.select_related("membership__user", "membership__tenant",
                                                    "invited_by")
                  .filter(digest=hash_token(token)).first())
    if invitation is None:
        _refuse("This invitation link is not valid. Check that it was copied whole.",
                ErrorCode.INVITATION_INVALID)
    elif invitation.state == InvitationState.ACCEPTED:
        _refuse("This invitation was already used. Log in with your email and password.",
                ErrorCode.INVITATION_USED)
    elif invitation.state == InvitationState.REPLACED:
        _refuse("This invitation was replaced by a newer one: use the link of the latest "
                "invitation.", ErrorCode.INVITATION_REPLACED)
    elif invitation.is_expired():
        _refuse(f"This invitation expired on {invitation.expires_at:%d %b %Y, %H:%M} UTC. "
                "Ask an owner or admin of the organisation to invite you again.",
                ErrorCode.INVITATION_EXPIRED)
    return invitation


def _refuse(detail: str, code: ErrorCode) -> NoReturn:
    raise Invalid(detail, code=code, errors={"token": [detail]})


@transaction.atomic
def accept_invitation(*, token: str, password: str, full_name: str = "") -> Membership:
    """Set the invited person's password and activate their account: they can log in and
    get API tokens from now on. The invitation cannot be used again."""
    invitation = find_invitation(token)
    invitation = (Invitation.objects.select_for_update().select_related("membership__user",
                                                                        "membership__tenant")
                  .get(pk=invitation.pk))
    if invitation.state != InvitationState.PENDING:  # accepted or replaced meanwhile
        invitation = find_invitation(token)
    user = invitation.membership.user
    if full_name:
        user.full_name = full_name
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise Invalid("Choose another password.", errors={"password": list(exc.messages)}) \
            from exc
    user.set_password(password)
    user.is_active = True
    user.save(update_fields=["password", "full_name", "is_active"])
    invitation.accept()
    invitation.save()
    events.record(Event.INVITATION_ACCEPTED, invitation, acting_user=user)
    return invitation.membership


@transaction.atomic
def change_role(membership: Membership, *, role: str, acting_user: User) -> Membership:
    if role not in Role.values:
        raise Invalid("Unknown role.", errors={"role": [f"Choose one of {ROLES}."]})
    _check_can_grant(acting_user.membership, role)
    if membership.role == Role.OWNER and role != Role.OWNER:
        _ensure_another_owner(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def remove_member(membership: Membership, *, acting_user: User) -> None:
    if membership.role == Role.OWNER:
        _check_can_grant(acting_user.membership, Role.OWNER)
        _ensure_another_owner(membership)
    membership.delete()


def _ensure_another_owner(membership: Membership) -> None:
    owners = (Membership.objects.select_for_update()
              .filter(tenant_id=membership.tenant_id, role=Role.OWNER))
    if not owners.exclude(pk=membership.pk).exists():
        raise Conflict("A tenant keeps at least one owner.")
