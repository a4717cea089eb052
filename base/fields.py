"""Model fields shared by the apps."""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models

__all__ = ["EncryptedJSONField"]


def _fernet() -> Fernet:
    key = settings.BUFFET_ENCRYPTION_KEY
    if not key:
        digest = hashlib.sha256(("buffet-credentials:" + settings.SECRET_KEY).encode()).digest()
        key = base64.urlsafe_b64encode(digest).decode()
    return Fernet(key.encode() if isinstance(key, str) else key)


class EncryptedJSONField(models.TextField):
    """A JSON value stored encrypted (Fernet). Secrets at rest are never plain text."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return {}
        try:
            return json.loads(_fernet().decrypt(value.encode()))
        except InvalidToken as exc:
            raise ValueError("Stored credentials cannot be decrypted with this key.") from exc

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        return self.from_db_value(value, None, None)

    def get_prep_value(self, value):
        if value is None:
            value = {}
        return _fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()

    def value_to_string(self, obj):
        return ""  # never serialised (dumpdata, admin diffs)
