from django.contrib import admin

from fabric.models import Cloud, CloudCapacity, Stamp, Template


@admin.register(Stamp)
class StampAdmin(admin.ModelAdmin):
    list_display = ["name", "region", "driver", "endpoint", "health", "last_checked_at"]
    list_filter = ["region", "driver", "health"]
    exclude = ["credentials"]  # encrypted; set through the API or the admin portal


class CapacityInline(admin.TabularInline):
    model = CloudCapacity
    extra = 0


@admin.register(Cloud)
class CloudAdmin(admin.ModelAdmin):
    list_display = ["name", "stamp", "vcpus", "memory_mb", "storage_gb", "vms"]
    inlines = [CapacityInline]


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "os", "cloud", "min_memory_mb", "min_disk_gb"]
    list_filter = ["cloud", "os"]


admin.site.register(CloudCapacity)
