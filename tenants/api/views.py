"""Accounts through the API: sign-up, tokens, the caller's tenant, its members and the
acceptance of invitations (``tenants.services``)."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from base.api.idempotency import IdempotentMixin
from base.api.schema import problems
from base.api.viewsets import TenantRolePermission, TenantViewSet
from base.errors import ErrorCode, Forbidden, NotAuthenticated, NotFound, TooManyAttempts
from base.scoping import current_tenant
from tenants import lockout, services
from tenants.api.serializers import (
    ApiTokenSerializer,
    InvitationAcceptSerializer,
    MemberSerializer,
    NewMemberSerializer,
    SignUpResultSerializer,
    SignUpSerializer,
    TenantSerializer,
    TokenRequestSerializer,
    TokenResultSerializer,
)
from tenants.models import ApiToken, Membership

__all__ = ["InvitationAcceptView", "MemberViewSet", "OwnTokenViewSet", "SignUpView", "TenantView",
           "TokenView"]


def _account(membership) -> dict:
    """``{user, tenant}``: the answer of a sign-up and of an accepted invitation."""
    user = membership.user
    return {"user": {"id": user.pk, "email": user.email, "full_name": user.full_name},
            "tenant": TenantSerializer(membership.tenant).data}


class SignUpView(IdempotentMixin, APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "signup"

    @extend_schema(
        summary="Sign up", request=SignUpSerializer,
        responses={201: SignUpResultSerializer},
        description="Create an organisation (a tenant) and its first user, who owns it. "
                    "Then get a token with `POST /api/v1/auth/token/`.")
    def post(self, request):
        serializer = SignUpSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.sign_up(**serializer.validated_data)
        return Response(_account(membership), status=status.HTTP_201_CREATED)


class InvitationAcceptView(IdempotentMixin, APIView):
    """The invited person sets a password; they can get API tokens from now on."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "invitation"

    @extend_schema(
        summary="Accept an invitation", request=InvitationAcceptSerializer,
        responses={200: SignUpResultSerializer},
        description="The person invited by email sets a password with the invitation's "
                    "token and can then get API tokens. An expired or used token is 400.")
    def post(self, request):
        serializer = InvitationAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.accept_invitation(**serializer.validated_data)
        return Response(_account(membership), status=status.HTTP_200_OK)


class TokenView(APIView):
    """Not idempotent by key: a token's key is never stored, so it cannot be replayed.

    An account with two-factor authentication (every staff account) also sends the
    current code of its authenticator app as ``otp``. A staff token is issued only on
    the provider's face (``base.faces``). Failures count towards the lockout
    (``tenants.lockout``), which refuses even the right password while it lasts.
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    def get_authenticate_header(self, request):
        return "Token"  # a wrong password is 401, as for a wrong token

    @extend_schema(
        summary="Get an API token", request=TokenRequestSerializer,
        responses={200: TokenResultSerializer, **problems(401, 403, 429)},
        description="Exchange an email and password for a token. Send it on every other "
                    "call as `Authorization: Token <key>`; the key is shown only here. An "
                    "account with two-factor authentication (every provider staff account) "
                    "also sends `otp`, the current code of its authenticator app: without "
                    "it 401 `/otp-required`, wrong 401 `/otp-invalid`; staff without an "
                    "authenticator yet get 403 `/otp-enrolment-required`. Staff get tokens "
                    "only on the provider's own host, when it has one. Repeated failures "
                    "lock the account or the address for a while: 429 `/login-locked`, "
                    "with `Retry-After`, even for the right password. The token works "
                    "until `expires_at`.")
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = authenticate(request, email=data["email"], password=data["password"])
        if user is None:
            _refuse_if_locked(request, data["email"])
            raise NotAuthenticated("Wrong email or password.")
        device = services.confirmed_device(user)
        if device is None and user.is_staff:
            raise Forbidden("Provider staff need two-factor authentication: set up an "
                            "authenticator app on the provider portal first.",
                            code=ErrorCode.OTP_ENROLMENT_REQUIRED)
        if device is not None:
            if not data["otp"]:
                raise NotAuthenticated(
                    "This account uses two-factor authentication: send the current code "
                    "of its authenticator app as otp.", code=ErrorCode.OTP_REQUIRED,
                    errors={"otp": ["This field is required."]})
            if services.verify_code(user, data["otp"]) is None:
                lockout.record_failure(request, user.email)
                _refuse_if_locked(request, user.email)
                raise NotAuthenticated("The code is not right: send the code the app shows "
                                       "now.", code=ErrorCode.OTP_INVALID,
                                       errors={"otp": ["Not the current code."]})
        issued = services.issue_token(user, name=data["name"])
        return Response({"token": issued.key, "expires_at": issued.token.expires_at},
                        status=status.HTTP_200_OK)


def _refuse_if_locked(request, email: str) -> None:
    locked = lockout.lockout_of(request, email)
    if locked is not None:
        raise TooManyAttempts(locked.message, retry_after=locked.seconds)


@extend_schema_view(
    list=extend_schema(summary="List your API tokens",
                       description="The caller's own tokens: when each was last used, when "
                                   "it expires, whether it still works. Keys are never "
                                   "shown again."),
    retrieve=extend_schema(summary="Get one of your API tokens"),
    destroy=extend_schema(summary="Revoke one of your API tokens",
                          description="The token stops working at once."),
)
class OwnTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's own API tokens: when each was last used and when it expires.
    ``DELETE`` revokes one at once."""

    queryset = ApiToken.objects.all()  # narrowed to the caller's own in get_queryset
    serializer_class = ApiTokenSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return super().get_queryset().filter(user=self.request.user)

    def perform_destroy(self, instance):
        services.revoke_token(instance, acting_user=self.request.user)


class TenantView(APIView):
    permission_classes = [TenantRolePermission]
    write_permission = "tenants.manage_members"

    @extend_schema(summary="The caller's organisation",
                   responses=TenantSerializer)
    def get(self, request):
        return Response(TenantSerializer(current_tenant(request.user)).data)


@extend_schema_view(
    list=extend_schema(summary="List the organisation's members"),
    retrieve=extend_schema(summary="Get a member"),
    create=extend_schema(summary="Add a member",
                         description="Owners and admins add people by email with a role."),
    update=extend_schema(summary="Change a member's role", responses={
        200: MemberSerializer, **problems(409)}),
    partial_update=extend_schema(summary="Change a member's role", responses={
        200: MemberSerializer, **problems(409)}),
    destroy=extend_schema(summary="Remove a member", responses={204: None, **problems(409)},
                          description="An organisation keeps at least one owner (409)."),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                    mixins.UpdateModelMixin, mixins.DestroyModelMixin, TenantViewSet):
    # A person without an account is added with an invitation: the answer to a create is
    # a NewMemberSerializer.
    queryset = Membership.objects.select_related("user").with_invitation()
    serializer_class = MemberSerializer
    write_permission = "tenants.manage_members"

    def get_serializer_class(self):
        return NewMemberSerializer if self.action == "create" else MemberSerializer

    def perform_create(self, serializer):
        data = serializer.validated_data
        added = services.add_member(
            self.tenant, email=data["user"]["email"], role=data["role"],
            acting_user=self.request.user, site_url=self.request.build_absolute_uri("/"))
        member = self.get_queryset().get(pk=added.membership.pk)
        issued = added.invitation
        member.invitation = issued and {"token": issued.token, "url": issued.url,
                                        "expires_at": issued.invitation.expires_at}
        serializer.instance = member

    def remembered_data(self, data):
        # A replay answers without the invitation's token: it is stored nowhere in clear.
        if isinstance(data, dict) and data.get("invitation"):
            return {**data, "invitation": {**data["invitation"], "token": None, "url": None}}
        return data

    def perform_update(self, serializer):
        if "role" not in serializer.validated_data:
            return
        membership = services.change_role(
            serializer.instance, role=serializer.validated_data["role"],
            acting_user=self.request.user)
        serializer.instance = self.get_queryset().get(pk=membership.pk)

    def perform_destroy(self, instance):
        if instance.tenant_id != self.tenant.pk:
            raise NotFound("No such member.")
        services.remove_member(instance, acting_user=self.request.user)
