from django.contrib import admin

from base.models import AuditEvent, IdempotencyRecord


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "event", "actor", "tenant", "object_type", "object_id"]
    list_filter = ["event"]
    search_fields = ["object_id"]


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["key", "scope", "status_code", "created_at"]
