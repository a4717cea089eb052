"""Cross-cutting records: idempotency keys of API requests, the audit trail."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from base.scoping import RestrictedQuerySet

__all__ = ["AuditEvent", "IdempotencyRecord"]


class IdempotencyRecord(models.Model):
    """The first answer to a POST that carried an ``Idempotency-Key``.

    The row is inserted in the request's transaction before the work is done, so a
    concurrent request with the same key waits on the unique index and then replays.
    """

    scope = models.CharField(max_length=64, help_text="The caller: a user id, or 'anonymous'.")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True)
    body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    location = models.CharField(max_length=255, blank=True,
                                help_text="The Location header of the first answer (a 202's job).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique"),
        ]

    def __str__(self):
        return self.key


class AuditEvent(models.Model):
    """Who did what to which object, written by every service that changes state
    (``base.events.record``). ``before``/``after`` hold only the fields that changed,
    never a secret."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False,
                           help_text="The id the API shows: rows are not counted by it.")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    event = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              related_name="+")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.SET_NULL, null=True,
                               related_name="+")
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    detail = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    before = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    after = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True, db_index=True,
                                  help_text="The request's X-Request-ID, or job:<id> in a worker.")
    address = models.GenericIPAddressField(null=True, blank=True,
                                           help_text="The address the request came from.")
    face = models.CharField(max_length=16, blank=True,
                            help_text="The portal face the request came to (base.faces).")

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "tenant"  # what restrict(tenant) follows

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "-at"]),
            models.Index(fields=["actor", "-at"], name="audit_actor_at"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.event} {self.object_type}:{self.object_id}"
