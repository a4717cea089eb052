"""Use cases of tenancy: sign-up, tokens, members and their invitations. The only place
that changes them."""

import functools
from base64 import b32encode
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from base import events, prepared
from base.errors import Conflict, ErrorCode, Forbidden, Invalid
from base.events import Event
from base.selection import Part, Selection
from tenants import emails
from tenants.models import (
    ApiToken,
    Invitation,
    InvitationState,
    Membership,
    Role,
    Tenant,
    User,
    UserSession,
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
    "authenticator_key",
    "change_role",
    "confirm_two_factor",
    "confirmed_device",
    "end_session",
    "end_sessions",
    "find_invitation",
    "find_token",
    "issue_token",
    "password_changed",
    "provision_two_factor",
    "record_lockout",
    "record_login_failure",
    "remove_member",
    "remove_two_factor",
    "revoke_token",
    "session_seen",
    "sign_up",
    "start_session",
    "start_two_factor",
    "unlock",
    "verify_code",
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
    membership = Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    events.record(Event.TENANT_CREATED, tenant, acting_user=user, tenant=tenant,
                  after={**events.values(tenant, ["name"]), "owner": user.email})
    return membership


def _tenant_of(user: User) -> Tenant | None:
    membership = Membership.objects.filter(user=user).select_related("tenant").first()
    return membership.tenant if membership else None


def token_lifetime(user: User) -> timedelta:
    """Staff tokens live hours, tenants' tokens days (settings)."""
    if user.is_staff:
        return timedelta(hours=settings.BUFFET_STAFF_TOKEN_TTL_HOURS)
    return timedelta(days=settings.BUFFET_TOKEN_TTL_DAYS)


@transaction.atomic
def issue_token(user: User, *, name: str = "api") -> IssuedToken:
    """A new API token: the login of an API client (its key is shown once, never stored
    nor recorded)."""
    key = ApiToken.new_key()
    token = ApiToken.objects.create(user=user, name=name or "api", digest=hash_token(key),
                                    hint=key[:10],
                                    expires_at=timezone.now() + token_lifetime(user))
    events.record(Event.TOKEN_CREATED, token, acting_user=user, tenant=_tenant_of(user),
                  after=events.values(token, ["name", "expires_at"]))
    return IssuedToken(token=token, key=key)


@transaction.atomic
def revoke_token(token: ApiToken, *, acting_user: User) -> None:
    if token.user_id != acting_user.pk:
        raise Forbidden("You can only revoke your own tokens.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        events.record(Event.TOKEN_REVOKED, token, acting_user=acting_user,
                      tenant=_tenant_of(acting_user), before={"revoked_at": None},
                      after=events.values(token, ["revoked_at"]), name=token.name)


# Every API request reads its token, its user and the user's membership and tenant: one
# prepared statement (a plan made once a connection) rather than the ORM's query built
# anew each time, which cost more than the database took to run it.
_TOKEN = Selection(Part(ApiToken, "k"), Part(User, "u"), Part(Membership, "m"),
                   Part(Tenant, "t"))


@functools.cache
def _token_statement(vendor: str) -> str:
    quote = connection.ops.quote_name
    return (f"SELECT {_TOKEN.columns(connection)} "  # noqa: S608
            f"FROM {quote(ApiToken._meta.db_table)} k "
            f"JOIN {quote(User._meta.db_table)} u ON u.id = k.user_id "
            f"LEFT JOIN {quote(Membership._meta.db_table)} m ON m.user_id = u.id "
            f"LEFT JOIN {quote(Tenant._meta.db_table)} t ON t.id = m.tenant_id "
            "WHERE k.digest = %(digest)s")


def find_token(key: str) -> ApiToken | None:
    """The token of this key, whatever its state, or None; with its user, and the user's
    membership and its tenant (None for a user of no tenant), as ``select_related`` gives
    them."""
    with connection.cursor() as cursor:
        prepared.execute(cursor, _token_statement(connection.vendor),
                         {"digest": hash_token(key)})
        row = cursor.fetchone()
    if row is None:
        return None
    token, user, membership, tenant = _TOKEN.read(row, connection)
    if membership is not None:
        membership.user, membership.tenant = user, tenant
    user._state.fields_cache["tenant_membership"] = membership
    token.user = user
    return token


def authenticate_token(key: str) -> ApiToken | None:
    """The token of this key if it works: not revoked, not expired, its user active."""
    token = find_token(key)
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    # Touch at most once a minute: a token used in a tight loop must not write every call.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- Two-factor authentication (TOTP) -------------------------------------------------

def confirmed_device(user: User) -> TOTPDevice | None:
    """The authenticator app the user enrolled, or None."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


@transaction.atomic
def start_two_factor(user: User) -> TOTPDevice:
    """A new secret for the user's authenticator app, not in force until confirmed with a
    code from it. A device left unconfirmed before is thrown away."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def pending_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()


@transaction.atomic
def confirm_two_factor(user: User, *, code: str) -> TOTPDevice:
    """Put the new device in force once it gave a right code; it replaces the old one."""
    device = pending_device(user)
    if device is None:
        raise Invalid("Start the set-up again: no new authenticator is waiting.",
                      code=ErrorCode.OTP_INVALID,
                      errors={"code": ["Start the set-up again."]})
    if not device.verify_token(code.strip()):
        detail = "That code is not right: type the 6 digits your app shows now."
        raise Invalid(detail, code=ErrorCode.OTP_INVALID, errors={"code": [detail]})
    replaced = TOTPDevice.objects.filter(user=user, confirmed=True).delete()[0]
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    events.record(Event.TWO_FACTOR_ADDED, user, acting_user=user, tenant=_tenant_of(user),
                  after={"device": device.name}, replaced=replaced)
    return device


def provision_two_factor(user: User) -> TOTPDevice:
    """An authenticator in force at once, for an account set up by its operator (the demo
    data): the key (``authenticator_key``) is handed over out of band. One in force stays."""
    device = confirmed_device(user)
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
        events.record(Event.TWO_FACTOR_ADDED, user, tenant=_tenant_of(user),
                      after={"device": device.name})
    return device


def authenticator_key(device: TOTPDevice) -> str:
    """The key to type into an authenticator app (base32)."""
    return b32encode(device.bin_key).decode()


def verify_code(user: User, code: str) -> TOTPDevice | None:
    """The user's device if ``code`` is its current one (each code works once; wrong
    codes slow further tries down), else None."""
    device = confirmed_device(user)
    if device is None or not code or not device.verify_token(code.strip()):
        return None
    return device


@transaction.atomic
def remove_two_factor(user: User, *, acting_user: User) -> None:
    if acting_user.pk != user.pk:
        raise Forbidden("You can only change your own two-factor authentication.")
    if user.is_staff:
        raise Conflict("Provider staff keep two-factor authentication: set up a new "
                       "authenticator to replace this one.", code=ErrorCode.OTP_STAFF_DEVICE)
    removed = TOTPDevice.objects.filter(user=user).delete()[0]
    if removed:
        events.record(Event.TWO_FACTOR_REMOVED, user, acting_user=acting_user,
                      tenant=_tenant_of(user), before={"device": "Authenticator app"})


# --- Web sessions ---------------------------------------------------------------------

@transaction.atomic
def start_session(user: User, *, ip_address: str | None, user_agent: str,
                  login: bool = True) -> UserSession:
    """The record of a new login (audited as one when ``login``), which its owner sees
    and can end. Records that ended long ago are dropped on the way."""
    now = timezone.now()
    UserSession.objects.filter(user=user, ended_at__lt=now - timedelta(days=30)).delete()
    session = UserSession.objects.create(user=user, created_at=now, last_seen_at=now,
                                         ip_address=ip_address or None,
                                         user_agent=(user_agent or "")[:255])
    if login:
        events.record(Event.LOGIN_SUCCEEDED, user, acting_user=user, tenant=_tenant_of(user),
                      session=session.pk)
    return session


def record_login_failure(email: str) -> None:
    """A login refused for a wrong password or code (``tenants.apps`` hears of them). The
    row names the email tried, whether or not it has an account; never the password."""
    email = str(email or "").strip().lower()
    user = User.objects.filter(email__iexact=email).first() if email else None
    events.record(Event.LOGIN_FAILED, user, tenant=_tenant_of(user) if user else None,
                  email=email)


def record_lockout(*, account: str, address: str | None) -> None:
    """Failed logins locked an account or an address (django-axes says so)."""
    email = str(account or "").strip().lower()
    user = User.objects.filter(email__iexact=email).first() if email else None
    events.record(Event.LOGIN_LOCKED_OUT, user, tenant=_tenant_of(user) if user else None,
                  account=email, address=address or "")


def session_ended(session: UserSession) -> str:
    """Why the session is over ("" while it is not): ended, too old or idle too long."""
    now = timezone.now()
    if session.ended_at is not None:
        return "This session was ended. Log in again."
    if now - session.created_at >= timedelta(seconds=settings.SESSION_COOKIE_AGE):
        return "Your session expired. Log in again."
    if now - session.last_seen_at >= timedelta(minutes=settings.BUFFET_SESSION_IDLE_MINUTES):
        return (f"You were logged out after {settings.BUFFET_SESSION_IDLE_MINUTES} minutes "
                "without activity.")
    return ""


def session_seen(session: UserSession) -> None:
    """The session was used now (written at most once a minute)."""
    now = timezone.now()
    if (now - session.last_seen_at).total_seconds() > 60:
        UserSession.objects.filter(pk=session.pk).update(last_seen_at=now)
        session.last_seen_at = now


def end_session(session: UserSession, *, acting_user: User) -> None:
    if session.user_id != acting_user.pk:
        raise Forbidden("You can only end your own sessions.")
    if session.ended_at is None:
        with transaction.atomic():
            ended = UserSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
                ended_at=timezone.now())
            if ended:
                events.record(Event.SESSION_ENDED, session, acting_user=acting_user,
                              tenant=_tenant_of(acting_user))


def end_sessions(user: User, *, acting_user: User, keep: UserSession | None = None) -> int:
    """End every open session of the user but ``keep``; how many were ended."""
    if user.pk != acting_user.pk:
        raise Forbidden("You can only end your own sessions.")
    sessions = UserSession.objects.filter(user=user, ended_at__isnull=True)
    if keep is not None:
        sessions = sessions.exclude(pk=keep.pk)
    with transaction.atomic():
        ended = sessions.update(ended_at=timezone.now())
        if ended:
            events.record(Event.SESSIONS_ENDED, user, acting_user=acting_user,
                          tenant=_tenant_of(user), count=ended)
    return ended


@transaction.atomic
def password_changed(user: User, *, keep: UserSession | None) -> int:
    """After the user set a new password: every other session ends (the new password
    is what a thief would not have). One audit row says both; how many ended."""
    sessions = UserSession.objects.filter(user=user, ended_at__isnull=True)
    if keep is not None:
        sessions = sessions.exclude(pk=keep.pk)
    ended = sessions.update(ended_at=timezone.now())
    events.record(Event.PASSWORD_CHANGED, user, acting_user=user, tenant=_tenant_of(user),
                  sessions_ended=ended)
    return ended


# --- Lockouts -------------------------------------------------------------------------

def unlock(*, account: str = "", address: str = "", acting_user: User) -> int:
    """The provider lifts the lockout of an account or an address before it ends."""
    if not acting_user.is_staff:
        raise Forbidden("Only the provider's staff may unlock logins.")
    if bool(account) == bool(address):
        raise Invalid("Name an account or an address to unlock.")
    with transaction.atomic():
        if account:
            reset = AxesProxyHandler.reset_attempts(username=account)
        else:
            reset = AxesProxyHandler.reset_attempts(ip_address=address)
        user = User.objects.filter(email__iexact=account).first() if account else None
        events.record(Event.LOGIN_UNLOCKED, user, acting_user=acting_user,
                      tenant=_tenant_of(user) if user else None,
                      account=account, address=address, reset=reset)
    return reset


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
        if membership.role != role:  # the new invitation's event says so
            membership = _change_role(membership, role=role, acting_user=acting_user)
    else:
        # Never reveal which other tenant the person belongs to.
        detail = ("This person is already a member." if membership.tenant_id == tenant.pk
                  else "This person already belongs to another organisation.")
        raise Conflict(detail, errors={"email": [detail]})
    if user.has_usable_password():
        events.record(Event.MEMBER_ADDED, membership, acting_user=acting_user,
                      after={"email": user.email, "role": membership.role})
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
                  after={"email": membership.user.email, "role": membership.role,
                         "expires_at": invitation.expires_at},
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
    before = events.values(membership, ["role"])
    membership = _change_role(membership, role=role, acting_user=acting_user)
    events.record(Event.MEMBER_ROLE_CHANGED, membership, acting_user=acting_user,
                  before=before, after=events.values(membership, ["role"]),
                  email=membership.user.email)
    return membership


def _change_role(membership: Membership, *, role: str, acting_user: User) -> Membership:
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
    events.record(Event.MEMBER_REMOVED, membership, acting_user=acting_user,
                  before={"email": membership.user.email, "role": membership.role})
    membership.delete()


def _ensure_another_owner(membership: Membership) -> None:
    owners = (Membership.objects.select_for_update()
              .filter(tenant_id=membership.tenant_id, role=Role.OWNER))
    if not owners.exclude(pk=membership.pk).exists():
        raise Conflict("A tenant keeps at least one owner.")
