"""Forms of the tenant portal's account pages. They parse input; ``tenants.services``
decides."""

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm

from base.events import Event
from base.web.forms import ListFilterForm, PortalForm, PortalFormMixin
from tenants import lockout
from tenants.models import Role, Tenant

__all__ = ["AuditFilterForm", "CodeForm", "InvitationAcceptForm", "LoginForm", "MemberForm",
           "PasswordForm", "SignUpForm", "TokenForm"]


class SignUpForm(PortalForm):
    full_name = forms.CharField(label="Your name", max_length=200, required=False,
                                widget=forms.TextInput(attrs={"autocomplete": "name"}))
    email = forms.EmailField(label="Work email", max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    tenant_name = forms.CharField(label="Organisation", max_length=200,
                                  help_text="The name your team is known by in the portal.",
                                  widget=forms.TextInput(attrs={"autocomplete": "organization"}))
    password = forms.CharField(
        max_length=128, strip=False,
        help_text=" ".join(password_validation.password_validators_help_texts()),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class InvitationAcceptForm(PortalForm):
    full_name = forms.CharField(label="Your name", max_length=200, required=False,
                                widget=forms.TextInput(attrs={"autocomplete": "name"}))
    password = forms.CharField(
        label="Choose a password", max_length=128, strip=False,
        help_text=" ".join(password_validation.password_validators_help_texts()),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "autofocus": True}))


class LoginForm(PortalFormMixin, AuthenticationForm):
    """Email and password. A locked account or address is told so, and for how long,
    whether the email has an account or not (``tenants.lockout``)."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].widget = forms.EmailInput(
            attrs={"autocomplete": "email", "autofocus": True})

    def clean(self):
        try:
            return super().clean()
        except forms.ValidationError:
            locked = lockout.lockout_of(self.request, self.cleaned_data.get("username", ""))
            if locked is not None:
                raise forms.ValidationError(locked.message, code="locked") from None
            raise


class CodeForm(PortalForm):
    code = forms.CharField(
        label="Authentication code", max_length=12, strip=True,
        help_text="The 6 digits your authenticator app shows for Buffet.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "autofocus": True}))


class PasswordForm(PortalFormMixin, PasswordChangeForm):
    pass


class MemberForm(PortalForm):
    email = forms.EmailField(max_length=254,
                             help_text="A person without an account gets an invitation by "
                                       "email.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.READER)


class TokenForm(PortalForm):
    name = forms.CharField(max_length=100, initial="api",
                           help_text="What the token is for, e.g. the program that uses it.")


class AuditFilterForm(ListFilterForm):
    """The provider's filters of the audit trail (the API's ``admin/audit/`` takes the
    same)."""

    tenant = forms.ModelChoiceField(queryset=Tenant.objects.order_by("name"), required=False,
                                    empty_label="All tenants")
    event = forms.ChoiceField(required=False, choices=[
        ("", "All events"), *sorted((e.value, e.value) for e in Event)])
    actor = forms.EmailField(required=False, widget=forms.EmailInput(
        attrs={"placeholder": "Actor's email"}))
    object_type = forms.CharField(required=False, max_length=64, widget=forms.TextInput(
        attrs={"placeholder": "Object type"}))
    object_id = forms.CharField(required=False, max_length=64, widget=forms.TextInput(
        attrs={"placeholder": "Object id"}))
    since = forms.DateTimeField(required=False, label="From", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, label="To", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}))
    lookups = {"tenant": "tenant", "event": "event", "actor": "actor__email__iexact",
               "object_type": "object_type", "object_id": "object_id", "since": "at__gte",
               "until": "at__lt"}
