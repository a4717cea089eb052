"""The tenant's usage page: usage and cost to date of a subscription, a line per meter."""

from functools import cached_property

from django.shortcuts import get_object_or_404
from django.views.generic import TemplateView

from base.errors import Invalid
from base.web.views import TenantPortalMixin
from billing import usage
from plans.models import Subscription, SubscriptionState

__all__ = ["UsageView"]

WIDTH, HEIGHT = 640, 200
COLOURS = ("#0d6efd", "#198754", "#dc3545", "#fd7e14", "#6f42c1", "#20c997", "#6c757d")


def chart(series: list[dict], meters: list[str]) -> list[dict]:
    """One SVG polyline per meter over the periods, each scaled to its own maximum (the
    meters count different units)."""
    periods = sorted({point["start"] for point in series})
    if not periods:
        return []
    step = WIDTH / max(1, len(periods) - 1)
    lines = []
    for index, meter in enumerate(meters):
        values = {p["start"]: p["quantity"] for p in series if p["meter"] == meter}
        top = max(values.values(), default=0) or 1
        points = " ".join(
            f"{i * step:.1f},{HEIGHT - float(values.get(period, 0) / top) * (HEIGHT - 10):.1f}"
            for i, period in enumerate(periods))
        lines.append({"meter": meter, "points": points, "colour": COLOURS[index % len(COLOURS)],
                      "peak": top})
    return lines


class UsageView(TenantPortalMixin, TemplateView):
    """``subscriptions/<id>/usage/``: the running month (or ``?from=&to=``) by day."""

    section = "subscriptions"
    template_name = "billing/usage.html"

    @cached_property
    def subscription(self) -> Subscription:
        return get_object_or_404(
            Subscription.objects.exclude(state=SubscriptionState.DELETED).restrict(self.tenant)
            .select_related("plan"), pk=self.kwargs["pk"])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        params, error = self.request.GET, None
        try:
            window = usage.parse_window(params)
        except Invalid as exc:
            window, error = usage.parse_window({}), exc.errors
        body = usage.summary(window, subscription=self.subscription)
        context.update(subscription=self.subscription, usage=body, error=error,
                       lines=chart(body["series"], [m["meter"] for m in body["meters"]]),
                       width=WIDTH, height=HEIGHT)
        return context
