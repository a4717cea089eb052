from django.contrib import admin

from dr_addon.models import NetworkMapping

admin.site.register(NetworkMapping)
