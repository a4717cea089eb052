"""Emails of tenancy, sent through Django's email backend (``EMAIL_*`` settings)."""

from datetime import datetime

from django.core.mail import send_mail
from django.template.loader import render_to_string

__all__ = ["send_invitation"]


def send_invitation(*, email: str, tenant_name: str, role: str, inviter: str, url: str,
                    expires_at: datetime) -> None:
    """The link with which a person added to a tenant without an account sets a password."""
    context = {"tenant": tenant_name, "role": role, "inviter": inviter, "url": url,
               "expires_at": expires_at}
    send_mail(subject=f"Join {tenant_name} on Buffet",
              message=render_to_string("tenants/email/invitation.txt", context),
              from_email=None, recipient_list=[email])
