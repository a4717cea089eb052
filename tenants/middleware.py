"""Web sessions that end: ``SESSION_COOKIE_AGE`` after the login, after
``BUFFET_SESSION_IDLE_MINUTES`` without a request, or when their owner ends them."""

from django.contrib import messages
from django.contrib.auth import logout

from tenants import services
from tenants.models import UserSession

__all__ = ["SESSION_KEY", "SessionLifetimeMiddleware", "client_address", "register_session"]

SESSION_KEY = "buffet_session"


def client_address(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def register_session(request, user, *, login: bool = True) -> UserSession:
    """Record the session a login just started (``login``; else one that began before
    records existed) and tie it to the web session."""
    session = services.start_session(user, ip_address=client_address(request),
                                     user_agent=request.META.get("HTTP_USER_AGENT", ""),
                                     login=login)
    request.session[SESSION_KEY] = str(session.pk)
    return session


def current_session(request) -> UserSession | None:
    """The record of the request's own session, once the middleware found it."""
    return getattr(request, "buffet_session", None)


class SessionLifetimeMiddleware:
    """Ends a session that is over (``services.session_ended``) and notes the others as
    seen. A logged-in session without a record (one from before records existed) gets
    one, so it can be listed and ended like the others."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated:
            session_id = request.session.get(SESSION_KEY)
            record = (UserSession.objects.filter(pk=session_id, user=user).first()
                      if session_id else None)
            if record is None and not session_id:
                record = register_session(request, user, login=False)
            why = "This session was ended. Log in again." if record is None \
                else services.session_ended(record)
            if why:
                if record is not None and record.ended_at is None:
                    services.end_session(record, acting_user=user)
                logout(request)
                messages.info(request, why)
            else:
                services.session_seen(record)
                request.buffet_session = record
        return self.get_response(request)
