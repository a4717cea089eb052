"""``Authorization: Token <key>`` for API clients, and how the OpenAPI document names it.

A token works until it is revoked or expires; a staff token only on the provider's face
(``base.faces``)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from base import faces
from base.errors import ErrorCode
from tenants import services


def faces_allow(request, user) -> bool:
    """Staff credentials work only where the provider's face is served."""
    return not user.is_staff or faces.serves_provider(request)


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <key>``; keys are looked up by their digest."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        try:
            key = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token header.") from exc
        token = services.authenticate_token(key)
        if token is None:
            found = services.find_token(key)
            if found is not None and found.revoked_at is None and found.is_expired \
                    and faces_allow(request, found.user):
                raise exceptions.AuthenticationFailed(
                    f"This token expired on {found.expires_at:%d %b %Y, %H:%M} UTC: "
                    "ask for a new one.", code=ErrorCode.TOKEN_EXPIRED)
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if not faces_allow(request, token.user):
            # A staff token is nothing on the public face: the same answer as a wrong one.
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "The header's value is `Token <key>` (the word `Token`, a space, "
                               "the key from `POST /api/v1/auth/token/`), not `Bearer`."}
