from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self):
        # Failed logins and lockouts are told by Django's ``authenticate`` (and
        # ``tenants.lockout.record_failure``) and by django-axes, not by a service of
        # ours: these receivers only write their audit rows.
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_login_failed

        user_login_failed.connect(_login_failed, dispatch_uid="tenants.audit.login_failed")
        user_locked_out.connect(_locked_out, dispatch_uid="tenants.audit.locked_out")


def _login_failed(sender, credentials=None, request=None, **kwargs):
    from tenants import services

    credentials = credentials or {}
    services.record_login_failure(credentials.get("email") or credentials.get("username") or "")


def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    from tenants import services

    services.record_lockout(account=username or "", address=ip_address)
