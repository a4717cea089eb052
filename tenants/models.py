"""Tenants (customer organisations), their members and API tokens."""

import hashlib
import secrets
import uuid

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Lower
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from base.scoping import RestrictedQuerySet

__all__ = ["ApiToken", "Invitation", "InvitationState", "Membership", "Role", "Tenant",
           "TokenState", "User", "UserSession"]


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    READER = "reader", "Reader"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, email):
        return self.get(email__iexact=email)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email address: a tenant member or provider staff."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Provider administrator.")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique",
                                    violation_error_message="This email is already registered."),
        ]

    def __str__(self):
        return self.email

    @property
    def membership(self) -> "Membership | None":
        """The user's membership with its tenant, loaded in one query and kept: the one way
        the API and the web UI learn the caller's tenant (``base.scoping``)."""
        cache = self._state.fields_cache
        if "tenant_membership" not in cache:
            cache["tenant_membership"] = (Membership.objects.select_related("tenant")
                                          .filter(user=self).first())
        return cache["tenant_membership"]


class Tenant(models.Model):
    """A customer organisation. Every resource a tenant owns hangs off its subscriptions.

    Its id identifies it; its name need not be unique. Two organisations may share a
    name, and sign-up must never tell anyone which names are taken: that would list the
    provider's customers to whoever asks.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class MembershipQuerySet(RestrictedQuerySet):
    def with_invitation(self) -> "MembershipQuerySet":
        """Each member with ``invitation_expires_at``: when the invitation they have not
        accepted yet expires, None for a person with an account."""
        pending = (Invitation.objects.filter(membership=OuterRef("pk"),
                                             state=InvitationState.PENDING)
                   .values("expires_at")[:1])
        return self.annotate(invitation_expires_at=Subquery(pending))


class Membership(models.Model):
    """A user's role in their tenant. A user belongs to at most one tenant."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="tenant_membership")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()
    tenant_path = "tenant"  # what restrict(tenant) follows

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=Role.values),
                                   name="membership_role_valid"),
        ]

    def __str__(self):
        return f"{self.user} ({self.role} of {self.tenant})"


class InvitationState(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REPLACED = "replaced", "Replaced"  # a newer invitation of the same member took its place


class Invitation(ConcurrentTransitionMixin, models.Model):
    """The single-use link with which a member added without an account sets a password.

    Only the token's SHA-256 digest is stored: the token is shown to the inviter once and
    sent to the person by email. A member has at most one pending invitation; inviting
    again replaces it, so an older link stops working. A pending invitation past
    ``expires_at`` is expired: it can no longer be accepted.
    """

    PREFIX = "bfi_"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE,
                                   related_name="invitations")
    digest = models.CharField(max_length=64, unique=True)
    state = FSMField(default=InvitationState.PENDING, choices=InvitationState.choices,
                     protected=True)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "membership__tenant"  # what restrict(tenant) follows

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=InvitationState.values),
                                   name="invitation_state_valid",
                                   violation_error_message="Not a state of an invitation."),
            models.UniqueConstraint(
                fields=["membership"], condition=models.Q(state=InvitationState.PENDING),
                name="invitation_one_pending_per_member",
                violation_error_message="This member already has a pending invitation."),
        ]

    def __str__(self):
        return f"invitation of {self.membership_id} ({self.state})"

    @property
    def tenant_id(self):
        """The tenant the invitation is to, as the audit trail reads it (``base.events``)."""
        return self.membership.tenant_id

    @classmethod
    def new_token(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at

    @transition(field=state, source=InvitationState.PENDING, target=InvitationState.ACCEPTED)
    def accept(self):
        self.accepted_at = timezone.now()

    @transition(field=state, source=InvitationState.PENDING, target=InvitationState.REPLACED)
    def replace(self):
        """A newer invitation of the same member takes this one's place."""


class TokenState(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """An API token. Only its SHA-256 digest is stored; the key is shown once.

    It stops working at ``expires_at`` (days for tenants, hours for staff: see
    ``BUFFET_TOKEN_TTL_DAYS``) or when revoked; a token issued before expiries existed
    has none.
    """

    PREFIX = "bft_"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="api")
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="First characters, to recognise it.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def new_key(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and timezone.now() >= self.expires_at

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def state(self) -> TokenState:
        if self.revoked_at is not None:
            return TokenState.REVOKED
        return TokenState.EXPIRED if self.is_expired else TokenState.ACTIVE


class UserSession(models.Model):
    """One logged-in browser: what its owner sees on the sessions page and can end.

    The web session carries this row's id (``tenants.middleware``); a row that is ended
    ends the session at its next request. A session also ends ``SESSION_COOKIE_AGE``
    after the login, or after ``BUFFET_SESSION_IDLE_MINUTES`` without a request.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="web_sessions")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["user", "ended_at"], name="usersession_user_open")]

    def __str__(self):
        return f"session of {self.user_id} since {self.created_at:%Y-%m-%d %H:%M}"
