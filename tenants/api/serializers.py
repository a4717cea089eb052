"""Shapes of tenants, members, invitations and tokens in the API."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from tenants.models import ApiToken, Membership, Role, Tenant, TokenState

__all__ = ["ApiTokenSerializer", "InvitationAcceptSerializer", "MemberSerializer",
           "NewMemberSerializer", "SignUpSerializer", "TenantSerializer", "TokenRequestSerializer"]


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "name", "created_at"]


class SignUpSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128,
                                     style={"input_type": "password"})
    tenant_name = serializers.CharField(max_length=200)
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class UserSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    full_name = serializers.CharField()


class SignUpResultSerializer(serializers.Serializer):
    user = UserSerializer()
    tenant = TenantSerializer()


@extend_schema_serializer(component_name="Token")
class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128)
    name = serializers.CharField(max_length=100, required=False, default="api")
    otp = serializers.CharField(
        write_only=True, max_length=12, required=False, allow_blank=True, default="",
        help_text="The current code of the account's authenticator app: required for an "
                  "account with two-factor authentication, which every staff account has.")


class TokenResultSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField(help_text="When the token stops working.")


class MemberSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)
    invitation_expires_at = serializers.DateTimeField(
        read_only=True, allow_null=True,
        help_text="While the person has not accepted their invitation: when it expires.")

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at", "invitation_expires_at"]


class InvitationSerializer(serializers.Serializer):
    token = serializers.CharField(
        read_only=True, allow_null=True,
        help_text="Shown once: only its digest is stored. Null in the replay of an answer "
                  "(Idempotency-Key); add the member again for a new one.")
    url = serializers.URLField(read_only=True, allow_null=True,
                               help_text="The web page where the person sets a password.")
    expires_at = serializers.DateTimeField(read_only=True)


class NewMemberSerializer(MemberSerializer):
    invitation = InvitationSerializer(
        read_only=True, allow_null=True,
        help_text="For a person without an account, also sent by email; null when an "
                  "existing account was added.")

    class Meta(MemberSerializer.Meta):
        fields = [*MemberSerializer.Meta.fields, "invitation"]


class InvitationAcceptSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=128)
    password = serializers.CharField(write_only=True, max_length=128,
                                     style={"input_type": "password"})
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class ApiTokenSerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(choices=TokenState.choices, read_only=True,
                                    help_text="Whether the token still works.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "hint", "state", "created_at", "last_used_at", "expires_at",
                  "revoked_at"]
        read_only_fields = fields
