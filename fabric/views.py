"""Web UI of the provider's fabric catalog: stamps, clouds and templates."""

from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.urls import reverse, reverse_lazy

from base.web import ui
from base.web.views import (
    ProviderPortalMixin,
    SearchListMixin,
    ServiceActionView,
    ServiceObjectFormView,
)
from fabric import services
from fabric.forms import CloudForm, StampForm, TemplateForm
from fabric.models import Cloud, Stamp, Template

__all__ = [
    "CloudFormView",
    "CloudListView",
    "StampCheckView",
    "StampDeleteView",
    "StampFormView",
    "StampListView",
    "TemplateFormView",
    "TemplateListView",
]


class StampListView(ProviderPortalMixin, SearchListMixin):
    section = "stamps"
    template_name = "fabric/stamp_list.html"
    search_fields = ("name", "region", "endpoint", "health")

    def get_queryset(self):
        return self.search(Stamp.objects.annotate(cloud_count=Count("clouds")).order_by("name"))


class StampFormView(ProviderPortalMixin, ServiceObjectFormView):
    section = "stamps"
    queryset = Stamp.objects.all()
    form_class = StampForm
    title = "Stamp"
    success_url = reverse_lazy("provider:stamp_list")
    success_message = "The stamp “{object.name}” was saved. Check it to read its capacity."

    def save(self, stamp, form):
        return services.save_stamp(stamp, fields=form.changed_fields(),
                                   acting_user=self.request.user)


class StampCheckView(ProviderPortalMixin, ServiceActionView):
    section = "stamps"
    confirm_label = "Check"

    def get_object(self):
        return get_object_or_404(Stamp, pk=self.kwargs["pk"])

    def perform(self, stamp):
        stamp = services.check_stamp(stamp, acting_user=self.request.user)
        detail = f": {stamp.health_detail}" if stamp.health_detail else "."
        return f"{stamp.name} is {stamp.get_health_display().lower()}{detail}"

    def get_success_url(self):
        return reverse("provider:stamp_list")


class StampDeleteView(ProviderPortalMixin, ServiceActionView):
    """The same rule as the API's DELETE: only a stamp that nothing uses."""

    section = "stamps"
    confirm = ("Delete the stamp “{object.name}”? Only a stamp that no cloud or job uses "
               "can be deleted; its health history goes with it.")
    confirm_label = "Delete"

    def get_object(self):
        return get_object_or_404(Stamp, pk=self.kwargs["pk"])

    def perform(self, stamp):
        services.delete_stamp(stamp, acting_user=self.request.user)
        return f"The stamp “{stamp.name}” was deleted."

    def get_success_url(self):
        return reverse("provider:stamp_list")


class CloudListView(ProviderPortalMixin, SearchListMixin):
    section = "clouds"
    template_name = "fabric/cloud_list.html"
    search_fields = ("name", "stamp__name", "stamp__region")

    def get_queryset(self):
        return self.search(Cloud.objects.select_related("stamp").prefetch_related("capacity_rows")
                           .annotate(plan_count=Count("plans")).order_by("name"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["rows"] = [(cloud, ui.ledger_bars(cloud.capacity_rows.all()))
                           for cloud in context["page_obj"].object_list]
        return context


class CloudFormView(ProviderPortalMixin, ServiceObjectFormView):
    section = "clouds"
    queryset = Cloud.objects.all()
    form_class = CloudForm
    title = "Cloud"
    success_url = reverse_lazy("provider:cloud_list")
    success_message = "The cloud “{object.name}” was saved."

    def save(self, cloud, form):
        return services.save_cloud(cloud, fields=form.changed_fields(),
                                   acting_user=self.request.user)


class TemplateListView(ProviderPortalMixin, SearchListMixin):
    section = "templates"
    template_name = "fabric/template_list.html"
    search_fields = ("name", "os", "image", "cloud__name")

    def get_queryset(self):
        return self.search(Template.objects.select_related("cloud")
                           .order_by("cloud__name", "name"))


class TemplateFormView(ProviderPortalMixin, ServiceObjectFormView):
    section = "templates"
    queryset = Template.objects.all()
    form_class = TemplateForm
    title = "Template"
    success_url = reverse_lazy("provider:template_list")
    success_message = "The template “{object.name}” was saved."

    def save(self, template, form):
        return services.save_template(template, fields=form.changed_fields(),
                                      acting_user=self.request.user)
