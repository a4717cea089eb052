"""How a person proves who they are with an email and a password."""

from django.contrib.auth.backends import ModelBackend

from base import faces

__all__ = ["EmailBackend"]


class EmailBackend(ModelBackend):
    """Email and password. Provider staff only where the provider's face is served: on
    the public face their password opens nothing, and the answer is the one of a wrong
    password (``base.faces``)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and user.is_staff and request is not None \
                and not faces.serves_provider(request):
            return None
        return user
