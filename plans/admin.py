from django.contrib import admin

from plans.models import AddOn, Plan, QuotaLedger, Subscription, SubscriptionAddOn


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "cloud", "max_subscriptions", "price_monthly"]
    list_filter = ["state", "cloud"]
    search_fields = ["name"]
    filter_horizontal = ["templates", "addons", "offered_to"]


@admin.register(AddOn)
class AddOnAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "recovery_cloud", "price_monthly"]
    list_filter = ["kind"]


class QuotaInline(admin.TabularInline):
    model = QuotaLedger
    extra = 0


class AddOnLinkInline(admin.TabularInline):
    model = SubscriptionAddOn
    extra = 0


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "tenant", "plan", "state", "created_at"]
    list_filter = ["state", "plan"]
    search_fields = ["name", "tenant__name", "id"]
    raw_id_fields = ["tenant"]
    inlines = [QuotaInline, AddOnLinkInline]


@admin.register(QuotaLedger)
class QuotaLedgerAdmin(admin.ModelAdmin):
    list_display = ["subscription", "dimension", "used", "limit"]
    list_filter = ["dimension"]
    raw_id_fields = ["subscription"]


admin.site.register(SubscriptionAddOn)
