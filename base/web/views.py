"""Base views of the two portals. Scoping, role checks and the translation of service
errors are applied here, once; the views of the apps only declare what they show and
which service they call.

- ``TenantPortalMixin``: the caller's tenant (``base.scoping``, as the API learns it) and
  the role check from ``tenants/rules.py``. Views restrict their querysets with
  ``Model.objects.restrict(self.tenant)``: another tenant's object is simply not there,
  so it answers 404, never 403 (tenants never learn of each other).
- ``ProviderPortalMixin``: provider staff only; anonymous callers go to the login page,
  anyone else gets 403.
- ``SearchListMixin``: ``?q=`` search, filters and pagination of every list.
- ``ServiceFormMixin`` and ``ServiceActionView``: hand input to a service; what the
  service refuses is shown next to the fields or as an alert.
"""

from functools import cached_property

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import FormView, ListView
from django.views.generic.edit import FormMixin

from base.errors import ServiceError
from base.pagination import BoundedCountPaginator
from base.scoping import current_membership
from base.web.forms import ListFilterForm, add_service_errors, error_messages

__all__ = ["ListFormMixin", "ProviderPortalMixin", "SearchListMixin", "ServiceActionView",
           "ServiceFormMixin", "ServiceObjectFormView", "TenantPortalMixin", "next_url"]

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def next_url(request, default: str) -> str:
    """Where a button's ``next`` field says to go back to (this site only), else default."""
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


class PortalMixin:
    """What every portal page has: the navigation section it belongs to."""

    area = ""  # "tenant" or "provider": which navigation the layout shows
    section = ""  # the navigation entry marked aria-current

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(area=self.area, section=self.section)
        return context


class TenantPortalMixin(PortalMixin, LoginRequiredMixin):
    """Base of every tenant portal view.

    ``permission_required`` is checked for reads and ``write_permission`` for writes,
    both against the caller's tenant, as the API's ``TenantViewSet`` does.
    """

    area = "tenant"
    permission_required = "tenants.view_tenant"
    write_permission = "tenants.view_tenant"

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = current_membership(request.user)
        if membership is None:
            if request.user.has_perm("portal.provider"):
                return redirect("provider:overview")
            raise PermissionDenied("You are not a member of any organisation.")
        self.membership, self.tenant = membership, membership.tenant
        needed = (self.permission_required if request.method in SAFE_METHODS
                  else self.write_permission)
        if not request.user.has_perm(needed, self.tenant):
            raise PermissionDenied("Your role in this organisation does not allow this.")
        return super().dispatch(request, *args, **kwargs)

    def can(self, permission: str) -> bool:
        return self.request.user.has_perm(permission, self.tenant)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            tenant=self.tenant, membership=self.membership,
            can_manage_members=self.can("tenants.manage_members"),
            can_manage_subscriptions=self.can("plans.manage_subscriptions"),
            can_operate=self.can("provisioning.operate"),
        )
        return context


class ProviderPortalMixin(PortalMixin, LoginRequiredMixin, PermissionRequiredMixin):
    """Base of every provider portal view (``/admin/``): staff only, and only once they
    passed two-factor authentication; anonymous callers go to the provider's login."""

    area = "provider"
    permission_required = "portal.provider"
    login_url = reverse_lazy("provider:login")

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if (user.is_authenticated and user.is_staff
                and not getattr(user, "is_verified", lambda: False)()):
            # Enrol a device, or give the code of the one enrolled, then come back.
            return redirect_to_login(request.get_full_path(), reverse("two_factor"))
        return super().dispatch(request, *args, **kwargs)


class SearchListMixin(ListView):
    """A paginated list searched with ``?q=`` over ``search_fields``.

    A list with filters declares ``filter_form_class`` (a ``ListFilterForm``) and calls
    ``self.filter(queryset)``; the search bar draws its fields as live selects.
    """

    paginate_by = 25
    paginator_class = BoundedCountPaginator
    search_fields: tuple[str, ...] = ()
    filter_form_class: type[ListFilterForm] | None = None

    def get_filter_form_kwargs(self) -> dict:
        return {}

    @cached_property
    def filter_form(self) -> ListFilterForm | None:
        if self.filter_form_class is None:
            return None
        form = self.filter_form_class(self.request.GET, auto_id="filter-%s",
                                      **self.get_filter_form_kwargs())
        for field in form.fields.values():
            field.widget.attrs.update({
                "class": "w-auto", "hx-get": self.request.path, "hx-trigger": "change",
                "hx-include": "closest form", "hx-target": "#results",
                "hx-select": "#results", "hx-swap": "outerHTML", "hx-push-url": "true"})
        return form

    def filter(self, queryset: QuerySet) -> QuerySet:
        return queryset if self.filter_form is None else self.filter_form.apply(queryset)

    @property
    def query(self) -> str:
        return self.request.GET.get("q", "").strip()

    def search(self, queryset: QuerySet) -> QuerySet:
        if not self.query:
            return queryset
        condition = Q()
        for field in self.search_fields:
            condition |= Q(**{f"{field}__icontains": self.query})
        return queryset.filter(condition)

    def get_queryset(self):
        return self.search(super().get_queryset())

    def annotate_page(self, rows: list) -> None:
        """Add what is summed over other tables to the rows of the page only (a grouped
        query per figure, for 25 rows), not to every row the list could show."""

    def get_paginator(self, *args, **kwargs):
        paginator = super().get_paginator(*args, **kwargs)
        if self.request.GET.get(self.page_kwarg) == "last" and self.page_kwarg not in self.kwargs:
            # ListView turns "last" into num_pages, which of an estimate may miss the rows
            self.kwargs[self.page_kwarg] = paginator.last_page_number()
        return paginator

    def paginate_queryset(self, queryset, page_size):
        paginator, page, rows, is_paginated = super().paginate_queryset(queryset, page_size)
        rows = list(rows)
        if rows:
            self.annotate_page(rows)
        page.object_list = rows
        return paginator, page, rows, is_paginated

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(q=self.query, filter_form=self.filter_form)
        return context


class ListFormMixin(FormMixin):
    """A list with a form on the same page (add a member, issue a token): an invalid
    form shows the list again with the errors."""

    def post(self, request, *args, **kwargs):
        self.object_list = self.get_queryset()
        form = self.get_form()
        return self.form_valid(form) if form.is_valid() else self.form_invalid(form)


class ServiceFormMixin:
    """A FormView whose valid input goes to a service (``perform``).

    ``perform`` returns the saved object or None; a ``ServiceError`` (or the model's own
    ``ValidationError``) it raises is shown on the form, next to the fields it names.
    """

    success_message = ""

    def perform(self, form):
        raise NotImplementedError

    def form_valid(self, form):
        try:
            self.object = self.perform(form)
        except (ServiceError, ValidationError) as exc:
            add_service_errors(form, exc)
            return self.form_invalid(form)
        if self.success_message:
            messages.success(self.request, self.success_message.format(object=self.object))
        return HttpResponseRedirect(self.get_success_url())


class ServiceObjectFormView(ServiceFormMixin, FormView):
    """Create (no ``pk`` in the URL) or edit one object through its ``save`` service."""

    queryset: QuerySet | None = None
    template_name = "portal/object_form.html"
    title = ""
    cancel_url = ""

    @cached_property
    def instance(self):
        pk = self.kwargs.get("pk")
        return get_object_or_404(self.queryset, pk=pk) if pk is not None else None

    def save(self, instance, form):
        raise NotImplementedError

    def perform(self, form):
        return self.save(self.instance, form)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["instance"] = self.instance
        return kwargs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(object=self.instance, creating=self.instance is None,
                       title=self.title.format(object=self.instance),
                       cancel_url=self.cancel_url or self.get_success_url())
        return context


class ServiceActionView(View):
    """A button that calls one service: POST does it, GET asks for confirmation.

    Destructive actions set ``confirm`` (the question); their buttons open the
    confirmation dialog, and the GET page asks the same question without JavaScript.
    An action that asks first without destroying anything sets ``destructive = False``.
    """

    confirm = ""
    confirm_label = "Confirm"
    destructive: bool | None = None  # None: destructive when it asks a question
    template_name = "portal/confirm.html"
    form_class = None  # parses the button's fields into ``self.data``, if it has any

    def get_object(self):
        raise NotImplementedError

    def perform(self, obj) -> str:
        """Call the service; return the message to show."""
        raise NotImplementedError

    def get_success_url(self) -> str:
        raise NotImplementedError

    def get(self, request, *args, **kwargs):
        obj = self.get_object()
        context = {"object": obj, "question": self.confirm.format(object=obj) or
                   f"{self.confirm_label} {obj}?", "confirm_label": self.confirm_label,
                   "destructive": bool(self.confirm) if self.destructive is None
                   else self.destructive, "fields": request.GET.items(),
                   "cancel_url": next_url(request, self.get_success_url()),
                   "area": self.area, "section": self.section,
                   "tenant": getattr(self, "tenant", None)}
        # In the dialog (htmx) only the question and its form; otherwise a whole page.
        template = "portal/components/confirm_form.html" if request.htmx else self.template_name
        return TemplateResponse(request, template, context)

    def post(self, request, *args, **kwargs):
        obj = self.get_object()
        back = next_url(request, self.get_success_url())
        self.data: dict = {}
        if self.form_class is not None:
            form = self.form_class(request.POST)
            if not form.is_valid():
                messages.error(request, " ".join(
                    m for ms in form.errors.values() for m in ms))
                return HttpResponseRedirect(back)
            self.data = form.cleaned_data
        try:
            done = self.perform(obj)
        except ServiceError as exc:
            messages.error(request, " ".join([exc.detail, *(
                m for ms in exc.errors.values() for m in error_messages(ms) if m != exc.detail)]))
        else:
            messages.success(request, done)
        return HttpResponseRedirect(back)
