"""Shapes of tenants, members, invitations and tokens in the API."""

from rest_framework import serializers

from tenants.models import ApiToken, Membership, Role, Tenant

__all__ = ["MemberSerializer", "SignUpSerializer", "TenantSerializer", "TokenRequestSerializer"]


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


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128)
    name = serializers.CharField(max_length=100, required=False, default="api")


class TokenResultSerializer(serializers.Serializer):
    token = serializers.CharField()


class MemberSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "hint", "created_at", "last_used_at", "revoked_at"]
