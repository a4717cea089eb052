"""The portal's two faces: the public one, for tenants, and the provider's.

The tenant portal faces the Internet; the provider's need not, and should not: a staff
password guessed from the Internet would open every tenant. When settings name the
provider's hosts (``BUFFET_PROVIDER_HOSTS``) and, optionally, the port of a listener of
its own (``BUFFET_PROVIDER_PORT``), only a request that arrives that way is on the
provider face. Anywhere else a provider path answers 404, as if it did not exist, and a
staff account is nobody: its session is not honoured, its token is refused and its
password opens nothing (``tenants.backends``, ``tenants.authentication``).

With neither set (the local runner, the tests), one host serves both faces, as before.
The port is the socket's (the WSGI server's ``SERVER_PORT``), which a client cannot
choose, whereas it can send any ``Host``: a deployment that puts the public listener on
the Internet gives the provider a port of its own (docker-compose.yml does).
"""

import enum

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.http.request import split_domain_port

__all__ = ["PROVIDER_PATHS", "Face", "FaceMiddleware", "face_of", "is_provider_path",
           "is_split", "serves_provider"]

# Everything of the provider: its portal (and its login page), its API, Django's admin.
PROVIDER_PATHS = ("/admin/", "/api/v1/admin/", "/django-admin/")


class Face(enum.StrEnum):
    SHARED = "shared"  # nothing set: one host serves tenants and provider alike
    PUBLIC = "public"
    PROVIDER = "provider"


def is_split() -> bool:
    """Whether the provider has a face of its own."""
    return bool(settings.BUFFET_PROVIDER_HOSTS or settings.BUFFET_PROVIDER_PORT)


def face_of(request) -> Face:
    """Which face a request came to; computed once per request."""
    cached = getattr(request, "_buffet_face", None)
    if cached is not None:
        return cached
    if not is_split():
        face = Face.SHARED
    else:
        host, _port = split_domain_port(request.get_host())
        host_ok = (not settings.BUFFET_PROVIDER_HOSTS
                   or host.lower() in settings.BUFFET_PROVIDER_HOSTS)
        port_ok = (not settings.BUFFET_PROVIDER_PORT
                   or str(request.META.get("SERVER_PORT", "")) == str(
                       settings.BUFFET_PROVIDER_PORT))
        face = Face.PROVIDER if host_ok and port_ok else Face.PUBLIC
    request._buffet_face = face
    return face


def serves_provider(request) -> bool:
    """Whether provider paths, staff logins, staff sessions and staff tokens work here."""
    return face_of(request) != Face.PUBLIC


def is_provider_path(path: str) -> bool:
    return path.startswith(PROVIDER_PATHS)


class FaceMiddleware:
    """On the public face: provider paths are 404 and a staff session counts for nothing.

    Installed after the authentication middleware. The 404 is raised, not returned, so
    the answer is the one of a path that does not exist (the API's problem+json, the web
    UI's page), whoever asks and with whatever credentials.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not serves_provider(request):
            if is_provider_path(request.path_info):
                raise Http404("No such page.")
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated and user.is_staff:
                # A cookie set by the provider face (same name, another port) is ignored
                # here, not ended: the provider is still logged in on its own face.
                request.user = AnonymousUser()
        return self.get_response(request)
