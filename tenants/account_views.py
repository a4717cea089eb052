"""Web UI of logging in and staying safe: the login and its two-factor step, setting up
two-factor authentication, one's own sessions; on the provider's side, the lockouts.

A login that passes the password but needs a code keeps only the user's id in the
anonymous session (``PENDING_KEY``) for a few minutes; the user is logged in once the
code is right. Staff without an authenticator yet are logged in but reach nothing of the
provider's until they set one up (``base.web.views.ProviderPortalMixin``).
"""

from urllib.parse import urlencode

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views import View
from django.views.generic import FormView, TemplateView
from django_otp import login as otp_login

from base.errors import ServiceError
from base.web.forms import add_service_errors
from base.web.views import ProviderPortalMixin, ServiceActionView
from tenants import lockout, services
from tenants.forms import CodeForm, LoginForm, PasswordForm
from tenants.middleware import current_session, register_session
from tenants.models import Membership, User, UserSession

__all__ = ["LoginCodeView", "LoginView", "LogoutView", "PasswordChangeView",
           "ProviderLockoutListView", "ProviderUnlockView", "SessionEndView", "SessionListView",
           "SessionsEndAllView", "TwoFactorRemoveView", "TwoFactorView", "log_in"]

LOGIN_BACKEND = "tenants.backends.EmailBackend"
PENDING_KEY = "buffet_pending_login"
PENDING_SECONDS = 300  # how long the code step waits after the password step


def log_in(request, user: User, device=None) -> None:
    """Log the user in (after two-factor with ``device``) and record the session."""
    login(request, user, backend=getattr(user, "backend", LOGIN_BACKEND))
    if device is not None:
        otp_login(request, device)
    register_session(request, user)


def _safe_next(request, target: str, default: str) -> str:
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


class LoginView(auth_views.LoginView):
    """Email and password, then the code when the account has two-factor. ``provider``:
    the provider's own login page (``/admin/login/``), whose default is its portal."""

    form_class = LoginForm
    template_name = "tenants/login.html"
    redirect_authenticated_user = True
    provider = False

    def get_default_redirect_url(self):
        return reverse("provider:overview") if self.provider else super(
        ).get_default_redirect_url()

    def get_context_data(self, **kwargs):
        return super().get_context_data(provider=self.provider, **kwargs)

    def form_valid(self, form):
        user = form.get_user()
        target = self.get_success_url()
        if services.confirmed_device(user) is not None:
            self.request.session[PENDING_KEY] = {
                "user": str(user.pk), "backend": user.backend, "next": target,
                "at": timezone.now().timestamp()}
            return redirect("login_code")
        log_in(self.request, user)
        if user.is_staff:
            messages.info(self.request, "Set up two-factor authentication to reach the "
                                        "provider portal.")
            return redirect(f"{reverse('two_factor')}?{urlencode({'next': target})}")
        return HttpResponseRedirect(target)


class LogoutView(auth_views.LogoutView):
    """Logging out ends the session's record too: it leaves the sessions list at once."""

    def post(self, request, *args, **kwargs):
        session = current_session(request)
        if session is not None:
            services.end_session(session, acting_user=request.user)
        return super().post(request, *args, **kwargs)


class LoginCodeView(FormView):
    """The second step of a login with two-factor: the code of the authenticator app.
    Wrong codes count as failed logins, towards the lockout."""

    form_class = CodeForm
    template_name = "tenants/login_code.html"

    def dispatch(self, request, *args, **kwargs):
        pending = request.session.get(PENDING_KEY) or {}
        fresh = timezone.now().timestamp() - pending.get("at", 0) < PENDING_SECONDS
        self.user = User.objects.filter(pk=pending.get("user"), is_active=True).first() \
            if pending and fresh else None
        if self.user is None:
            request.session.pop(PENDING_KEY, None)
            messages.info(request, "Log in again: the code was not given in time.")
            return redirect("login")
        self.pending = pending
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        email = self.user.email
        locked = lockout.lockout_of(self.request, email)
        device = None if locked else services.verify_code(self.user, form.cleaned_data["code"])
        if device is None:
            if locked is None:
                lockout.record_failure(self.request, email)
                locked = lockout.lockout_of(self.request, email)
            if locked is not None:
                self.request.session.pop(PENDING_KEY, None)
                form.add_error(None, locked.message)
            else:
                form.add_error("code", "That code is not right: type the code the app "
                                       "shows now.")
            return self.form_invalid(form)
        self.request.session.pop(PENDING_KEY, None)
        self.user.backend = self.pending["backend"]
        log_in(self.request, self.user, device)
        return HttpResponseRedirect(_safe_next(self.request, self.pending.get("next", ""),
                                               reverse("dashboard")))


class AccountPageMixin(LoginRequiredMixin):
    """A page of one's own account, in the navigation of the portal one belongs to."""

    section = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        membership = Membership.objects.select_related("tenant").filter(user=user).first()
        context.update(area="provider" if user.is_staff else "tenant", section=self.section,
                       tenant=membership.tenant if membership else None)
        return context

    def home(self) -> str:
        return reverse("provider:overview" if self.request.user.is_staff else "dashboard")


class PasswordChangeView(AccountPageMixin, auth_views.PasswordChangeView):
    """A new password ends every other session of the account."""

    form_class = PasswordForm
    template_name = "tenants/password_change.html"
    section = "password"

    def get_success_url(self):
        return self.home()

    def form_valid(self, form):
        with transaction.atomic():  # the new password and its audit row together
            response = super().form_valid(form)
            ended = services.password_changed(self.request.user,
                                              keep=current_session(self.request))
        others = f" {ended} other session{'s' if ended != 1 else ''} ended." if ended else ""
        messages.success(self.request, "Your password was changed." + others)
        return response


# --- Two-factor authentication --------------------------------------------------------

class TwoFactorView(AccountPageMixin, FormView):
    """Set up an authenticator app (QR code and ``otpauth://`` link, then a code from
    it), or, with one set up, give its code to open the provider portal."""

    form_class = CodeForm
    template_name = "tenants/two_factor.html"
    section = "two_factor"

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.device = services.confirmed_device(request.user)
        self.verified = request.user.is_verified()
        self.pending = services.pending_device(request.user)
        return super().dispatch(request, *args, **kwargs)

    @property
    def mode(self) -> str:
        if self.device is not None and not self.verified:
            return "verify"  # the code of the device in force, for this session
        return "enrol" if self.pending is not None or self.device is None else "on"

    def get(self, request, *args, **kwargs):
        if self.mode == "enrol" and self.pending is None:
            self.pending = services.start_two_factor(request.user)
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        if request.POST.get("action") == "start":
            if self.device is not None and not self.verified:
                raise PermissionDenied("Give the code of your authenticator first.")
            services.start_two_factor(request.user)
            return redirect("two_factor")
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(mode=self.mode, device=self.device, next=self.next_url())
        if self.mode == "enrol" and self.pending is not None:
            uri = self.pending.config_url
            context.update(otpauth_uri=uri, secret=uri.split("secret=")[1].split("&")[0],
                           qr=mark_safe(segno.make(uri, error="m").svg_inline(  # noqa: S308
                               scale=5, title="QR code of the authenticator set-up")))
        return context

    def next_url(self) -> str:
        target = self.request.POST.get("next") or self.request.GET.get("next", "")
        return _safe_next(self.request, target, "")

    def form_valid(self, form):
        code = form.cleaned_data["code"]
        user = self.request.user
        if self.mode == "verify":
            device = services.verify_code(user, code)
            if device is None:
                lockout.record_failure(self.request, user.email)
                form.add_error("code", "That code is not right: type the code the app "
                                       "shows now.")
                return self.form_invalid(form)
            otp_login(self.request, device)
            return HttpResponseRedirect(self.next_url() or self.home())
        try:
            device = services.confirm_two_factor(user, code=code)
        except ServiceError as exc:
            add_service_errors(form, exc)
            return self.form_invalid(form)
        otp_login(self.request, device)
        messages.success(self.request, "Two-factor authentication is on: the next login "
                                       "asks for a code from your app.")
        return HttpResponseRedirect(self.next_url() or reverse("two_factor"))


class TwoFactorRemoveView(AccountPageMixin, ServiceActionView):
    confirm = ("Turn two-factor authentication off? Your password alone will log you in "
               "again.")
    confirm_label = "Turn off"
    section = "two_factor"

    @property
    def area(self):
        return "provider" if self.request.user.is_staff else "tenant"

    def get_object(self):
        device = services.confirmed_device(self.request.user)
        if device is None:
            raise PermissionDenied("Two-factor authentication is not on.")
        if not self.request.user.is_verified():
            raise PermissionDenied("Give the code of your authenticator first.")
        return device

    def perform(self, device):
        services.remove_two_factor(self.request.user, acting_user=self.request.user)
        return "Two-factor authentication is off."

    def get_success_url(self):
        return reverse("two_factor")


# --- Sessions -------------------------------------------------------------------------

class SessionListView(AccountPageMixin, TemplateView):
    """Where one is logged in; any of it can be ended, or all at once."""

    template_name = "tenants/sessions.html"
    section = "sessions"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        sessions = [s for s in UserSession.objects.filter(user=self.request.user,
                                                          ended_at__isnull=True)
                    if not services.session_ended(s)]
        current = current_session(self.request)
        context.update(sessions=sessions, current=current.pk if current else None,
                       idle_minutes=f"{settings.BUFFET_SESSION_IDLE_MINUTES} minutes")
        return context


class SessionEndView(AccountPageMixin, ServiceActionView):
    confirm = "End this session? That browser will have to log in again."
    confirm_label = "End session"
    section = "sessions"

    @property
    def area(self):
        return "provider" if self.request.user.is_staff else "tenant"

    def get_object(self):
        return get_object_or_404(UserSession, pk=self.kwargs["pk"], user=self.request.user)

    def perform(self, session):
        services.end_session(session, acting_user=self.request.user)
        return "The session was ended."

    def get_success_url(self):
        return reverse("session_list")


class SessionsEndAllView(LoginRequiredMixin, View):
    """Log out everywhere, this browser included."""

    def post(self, request):
        ended = services.end_sessions(request.user, acting_user=request.user)
        logout(request)
        messages.success(request, f"You were logged out everywhere ({ended} "
                                  f"session{'s' if ended != 1 else ''}).")
        return redirect("login")


# --- The provider's view of lockouts --------------------------------------------------

class ProviderLockoutListView(ProviderPortalMixin, TemplateView):
    """Accounts and addresses locked now by failed logins, each with an unlock button."""

    template_name = "tenants/provider/lockouts.html"
    section = "lockouts"

    def get_context_data(self, **kwargs):
        return super().get_context_data(lockouts=lockout.current_lockouts(), **kwargs)


class ProviderUnlockView(ProviderPortalMixin, View):
    def post(self, request):
        account, address = request.POST.get("account", ""), request.POST.get("address", "")
        try:
            services.unlock(account=account, address=address, acting_user=request.user)
        except ServiceError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"{account or address} can log in again.")
        return redirect("provider:lockout_list")
