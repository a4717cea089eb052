"""Web UI of tenancy: accounts (sign-up, accepting an invitation; logging in and the
rest of an account's safety: ``tenants.account_views``),
members and their invitations, API tokens and the activity log; on the provider's side,
the list of tenants."""

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views import View
from django.views.generic import FormView

from base.errors import Invalid
from base.models import AuditEvent
from base.web import ui
from base.web.views import (
    ListFormMixin,
    ProviderPortalMixin,
    SearchListMixin,
    ServiceActionView,
    ServiceFormMixin,
    TenantPortalMixin,
)
from tenants import services
from tenants.account_views import log_in
from tenants.api.audit import csv_rows
from tenants.forms import (
    AuditFilterForm,
    InvitationAcceptForm,
    MemberForm,
    SignUpForm,
    TokenForm,
)
from tenants.models import ApiToken, Invitation, InvitationState, Membership, Role

__all__ = [
    "ActivityView",
    "InvitationAcceptView",
    "MemberListView",
    "MemberRemoveView",
    "MemberRoleView",
    "ProviderAuditExportView",
    "ProviderAuditView",
    "SignUpView",
    "TokenListView",
    "TokenRevokeView",
]

# --- Accounts -------------------------------------------------------------------------

class SignUpView(ServiceFormMixin, FormView):
    """A new organisation and its owner; the owner is logged in straight away."""

    form_class = SignUpForm
    template_name = "tenants/signup.html"
    success_url = reverse_lazy("dashboard")
    success_message = "Welcome to Buffet, {object.tenant}. Pick a plan to get started."

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            return redirect("dashboard")
        return super().dispatch(request, *args, **kwargs)

    def perform(self, form):
        membership = services.sign_up(**form.cleaned_data)
        log_in(self.request, membership.user)
        return membership

    def get_success_url(self):
        return reverse("plan_list")


class InvitationAcceptView(ServiceFormMixin, FormView):
    """The page an invitation's link opens, without logging in: the person chooses a
    password and is logged in to their organisation."""

    form_class = InvitationAcceptForm
    template_name = "tenants/invitation_accept.html"
    success_message = "Welcome to {object.tenant}. You are its {object.role}."

    def dispatch(self, request, *args, **kwargs):
        try:
            self.invitation = services.find_invitation(kwargs["token"])
        except Invalid as exc:
            return TemplateResponse(request, "tenants/invitation_invalid.html",
                                    {"problem": exc.detail}, status=400)
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        return {"full_name": self.invitation.membership.user.full_name}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        membership = self.invitation.membership
        inviter = self.invitation.invited_by
        context.update(invitation=self.invitation, invited_email=membership.user.email,
                       invited_to=membership.tenant.name, invited_role=membership.role,
                       inviter=(inviter.full_name or inviter.email) if inviter else "")
        return context

    def perform(self, form):
        membership = services.accept_invitation(token=self.kwargs["token"], **form.cleaned_data)
        log_in(self.request, membership.user)
        return membership

    def get_success_url(self):
        return reverse("dashboard")


# --- Members --------------------------------------------------------------------------

class MemberListView(TenantPortalMixin, ServiceFormMixin, ListFormMixin, SearchListMixin):
    """Everyone sees the members; owners and admins add, change and remove them, and see
    the invitations not accepted yet. A new invitation's link is shown once, on the answer
    to the form that sent it."""

    section = "members"
    template_name = "tenants/members.html"
    form_class = MemberForm
    write_permission = "tenants.manage_members"
    search_fields = ("user__email", "user__full_name", "role")

    @property
    def success_message(self) -> str:
        added = "{object.membership.user.email} was added as {object.membership.role}"
        return added + (" and invited by email." if self.object.invitation else ".")

    def get_queryset(self):
        return self.search(Membership.objects.select_related("user").restrict(self.tenant)
                           .with_invitation().order_by("created_at"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["roles"] = Role.choices
        if context["can_manage_members"]:
            context["pending"] = (Invitation.objects.restrict(self.tenant)
                                  .filter(state=InvitationState.PENDING)
                                  .select_related("membership__user", "invited_by"))
        return context

    def perform(self, form):
        return services.add_member(self.tenant, email=form.cleaned_data["email"],
                                   role=form.cleaned_data["role"],
                                   acting_user=self.request.user,
                                   site_url=self.request.build_absolute_uri("/"))

    def form_valid(self, form):
        response = super().form_valid(form)
        added = getattr(self, "object", None)
        if added is None or added.invitation is None:
            return response  # refused (the form again) or added directly (a redirect)
        # Not a redirect: the link's token is never stored, so it can only be shown now.
        self.object_list = self.get_queryset()
        return self.render_to_response(self.get_context_data(
            form=self.get_form_class()(), invited=added.invitation))

    def get_success_url(self):
        return reverse("member_list")


class MemberActionView(TenantPortalMixin, ServiceActionView):
    section = "members"
    permission_required = write_permission = "tenants.manage_members"

    def get_object(self):
        return get_object_or_404(Membership.objects.select_related("user").restrict(self.tenant),
                                 pk=self.kwargs["pk"])

    def get_success_url(self):
        return reverse("member_list")


class MemberRoleView(MemberActionView):
    confirm_label = "Change role"

    def perform(self, membership):
        # The role is checked by the service, like every other rule.
        membership = services.change_role(membership, role=self.request.POST.get("role", ""),
                                          acting_user=self.request.user)
        return f"{membership.user.email} is now {membership.role}."


class MemberRemoveView(MemberActionView):
    confirm = ("Remove {object.user.email} from the organisation? They lose access to "
               "every subscription at once.")
    confirm_label = "Remove member"

    def perform(self, membership):
        services.remove_member(membership, acting_user=self.request.user)
        return f"{membership.user.email} was removed."


# --- API tokens -----------------------------------------------------------------------

class TokenListView(TenantPortalMixin, ListFormMixin, SearchListMixin):
    """The caller's own API tokens. A new token's key is shown once, on this answer."""

    section = "tokens"
    template_name = "tenants/tokens.html"
    form_class = TokenForm
    search_fields = ("name", "hint")

    def get_queryset(self):
        return self.search(ApiToken.objects.filter(user=self.request.user))

    def form_valid(self, form):
        issued = services.issue_token(self.request.user, name=form.cleaned_data["name"])
        # Not a redirect: the key is never stored, so it can only be shown now.
        self.object_list = self.get_queryset()
        return self.render_to_response(self.get_context_data(
            form=self.get_form_class()(), issued=issued))

    def get_success_url(self):
        return reverse("token_list")


class TokenRevokeView(TenantPortalMixin, ServiceActionView):
    section = "tokens"
    confirm = ("Revoke the token “{object.name}” ({object.hint}…)? Programs that use it "
               "stop working at once.")
    confirm_label = "Revoke token"

    def get_object(self):
        return get_object_or_404(ApiToken, pk=self.kwargs["pk"], user=self.request.user)

    def perform(self, token):
        services.revoke_token(token, acting_user=self.request.user)
        return f"The token “{token.name}” was revoked."

    def get_success_url(self):
        return reverse("token_list")


# --- Activity -------------------------------------------------------------------------

class ActivityView(TenantPortalMixin, SearchListMixin):
    section = "activity"
    template_name = "tenants/activity.html"
    search_fields = ("event", "actor__email", "object_type")
    paginate_by = 50

    def get_queryset(self):
        return self.search(AuditEvent.objects.select_related("actor").restrict(self.tenant))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["lines"] = ui.activity(context["page_obj"].object_list)
        return context


# --- The provider's audit trail -----------------------------------------------------

class ProviderAuditMixin(ProviderPortalMixin):
    section = "audit"
    filter_form_class = AuditFilterForm
    search_fields = ("event", "actor__email", "object_type", "object_id", "request_id",
                     "tenant__name")

    def audit_rows(self):
        events = AuditEvent.objects.select_related("actor", "tenant")
        return self.search(self.filter(events))


class ProviderAuditView(ProviderAuditMixin, SearchListMixin):
    """Every audit row, with filters, 50 a page; the same rows as CSV (the export)."""

    template_name = "tenants/provider/audit.html"
    paginate_by = 50

    def get_queryset(self):
        return self.audit_rows()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["lines"] = ui.activity(context["page_obj"].object_list)
        return context


class ProviderAuditExportView(ProviderAuditMixin, SearchListMixin, View):
    """The filtered rows of the audit page, streamed as CSV."""

    def get(self, request, *args, **kwargs):
        response = StreamingHttpResponse(csv_rows(self.audit_rows()),
                                         content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
