"""Use cases of tenancy: sign-up, tokens, members. The only place that changes them."""

from dataclasses import dataclass

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from base.errors import Conflict, Forbidden, Invalid
from tenants.models import ApiToken, Membership, Role, Tenant, User, hash_token

ROLES = ", ".join(Role.values)

__all__ = [
    "add_member",
    "authenticate_token",
    "change_role",
    "issue_token",
    "remove_member",
    "revoke_token",
    "sign_up",
]


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown once, never stored


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
def add_member(tenant: Tenant, *, email: str, role: str, acting_user: User) -> Membership:
    """Add a person to the tenant; an unknown email gets an account to be activated."""
    if role not in Role.values:
        raise Invalid("Unknown role.", errors={"role": [f"Choose one of {ROLES}."]})
    _check_can_grant(acting_user.membership, role)
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email)
    elif user.is_staff:
        raise Conflict("Provider staff cannot be tenant members.",
                       errors={"email": ["This address belongs to provider staff."]})
    existing = Membership.objects.filter(user=user).select_related("tenant").first()
    if existing is not None:
        # Never reveal which other tenant the person belongs to.
        detail = ("This person is already a member." if existing.tenant_id == tenant.pk
                  else "This person already belongs to another organisation.")
        raise Conflict(detail, errors={"email": [detail]})
    return Membership.objects.create(user=user, tenant=tenant, role=role)


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
