import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

from portal import heap  # noqa: E402 - needs the settings the application loaded

heap.freeze()
