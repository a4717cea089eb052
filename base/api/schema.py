"""The OpenAPI document tells what the server really sends (API.md, "General").

``AutoSchema`` is REST_FRAMEWORK's ``DEFAULT_SCHEMA_CLASS``: it adds to every operation,
from what its view really does, what API.md says of all of them:

- its error answers, each one ``ProblemDetails`` under ``application/problem+json``:
  400 where input is read (a body, the Idempotency-Key of a POST, validated filters),
  401 where credentials are needed, 403 where a permission can refuse, 404 for one object
  (or a page of a list past its end), 409 for a POST that takes an Idempotency-Key, 429
  where a throttle applies;
- the ``Idempotency-Key`` header on every POST;
- ``Location`` on a 202 (the job) and ``Retry-After`` on a 429 and a curable 409;
- every field of a response as required, since serializers send all their fields (a field
  declared ``read_only=True, required=False`` is the exception: it is sent only sometimes);
- descriptions written for clients only: an operation's comes from ``extend_schema``, a
  component's from ``extend_schema_serializer``, never from a docstring of the code.

A view declares the error answers these rules cannot see (a DELETE refused in some state:
409; a POST whose body names an object that may be missing: 404) with
``extend_schema(responses={..., **problems(409)})``.
"""

import uritemplate
from drf_spectacular import openapi
from drf_spectacular.drainage import has_override
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_serializer
from rest_framework import permissions, serializers

from base.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from base.api.idempotency import IdempotentMixin
from base.api.problems import PROBLEM_CONTENT_TYPE
from base.api.viewsets import IsProvider
from base.errors import RETRY_AFTER_SECONDS

__all__ = ["IDEMPOTENCY_KEY", "AutoSchema", "ProblemDetailsSerializer", "QuotaExcessSerializer",
           "problems"]


# --- ProblemDetails -------------------------------------------------------------------

@extend_schema_serializer(description=(
    "How much a quota-exceeded answer asked for in one dimension, against what is used "
    "and the limit."))
class QuotaExcessSerializer(serializers.Serializer):
    requested = serializers.IntegerField(help_text="What the request would add.")
    used = serializers.IntegerField(help_text="What is in use now.")
    limit = serializers.IntegerField(help_text="The most that may be in use.")


class ProblemErrorsField(serializers.DictField):
    """``errors`` of a problem: messages per field, or a quota dimension's excess."""


class ProblemErrorsFieldExtension(OpenApiSerializerFieldExtension):
    target_class = ProblemErrorsField

    def map_serializer_field(self, auto_schema, direction):
        excess = auto_schema.resolve_serializer(QuotaExcessSerializer, direction).ref
        return {
            "type": "object",
            "additionalProperties": {"oneOf": [
                {"type": "array", "items": {"type": "string"}},
                excess,
            ]},
            "description": (
                "What is wrong, by name. For bad input (400) each field (or header) at "
                "fault with its messages: `a.b` for a nested field, `a.0` for an item of "
                "a list. For quota-exceeded (409) each dimension over its limit, with "
                "`requested`, `used` and `limit`."),
        }


@extend_schema_serializer(component_name="ProblemDetails", description=(
    "An error (RFC 9457). `type` ends with a code that programs can match on, such as "
    "`/invalid`, `/not-found`, `/quota-exceeded`, `/vm-state` or "
    "`/idempotency-key-reused`; `detail` is for people."))
class ProblemDetailsSerializer(serializers.Serializer):
    type = serializers.URLField(help_text="URI naming the kind of problem; its last segment "
                                          "is the error code.")
    title = serializers.CharField(help_text="Short summary of the kind of problem.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="What went wrong in this request.")
    errors = ProblemErrorsField(read_only=True, required=False,
                                help_text="Sent when the problem names fields or dimensions.")


_PROBLEM_DESCRIPTIONS = {
    400: "The request is not valid; `errors` names each field at fault. Nothing was done.",
    401: "No credentials, or a token that is wrong or revoked: send "
         "`Authorization: Token <key>`.",
    403: "Authenticated, but not allowed: the caller's role in the organisation does not "
         "allow this, or the caller belongs to no organisation.",
    404: "Not found, or it belongs to another tenant (for a list: a page past its end).",
    409: "The request conflicts with the current state: `type` names the rule (e.g. "
         "`/quota-exceeded`, with `errors` per dimension, or `/idempotency-key-reused`). "
         "With `Retry-After` the conflict is with work in progress, and the same request "
         "may succeed after it.",
    429: "Too many requests: retry after `Retry-After` seconds.",
}
_STAFF_ONLY = "Only the provider's staff may use this endpoint."
_SUCCESS_DESCRIPTIONS = {
    "200": "OK.",
    "201": "Created.",
    "202": "Accepted: a job carries it out (see `Location`).",
    "204": "Done; no body.",
}


def problems(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error answers for ``extend_schema(responses=...)``, beyond those found by the rules."""
    return {status: OpenApiResponse(ProblemDetailsSerializer,
                                    description=_PROBLEM_DESCRIPTIONS.get(status, ""))
            for status in statuses}


# --- Headers --------------------------------------------------------------------------

_KEY_SCHEMA = {"type": "string", "maxLength": 255}
IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER, _KEY_SCHEMA, OpenApiParameter.HEADER,
    description="Any string of yours, up to 255 characters, unique per request you mean. "
                "The same key with the same body returns the first answer again and does "
                "nothing new; the same key with another body is 409 "
                "`/idempotency-key-reused`.")
IDEMPOTENCY_KEY_IGNORED = OpenApiParameter(
    IDEMPOTENCY_HEADER, _KEY_SCHEMA, OpenApiParameter.HEADER,
    description="Accepted and not replayed: a token's key is shown once and never stored, "
                "so every call issues a new token.")

_LOCATION = {
    "description": "The job that carries out the request: `/api/v1/jobs/<uuid>/`.",
    "required": True,
    "schema": {"type": "string", "format": "uri-reference"},
}
_RETRY_AFTER_THROTTLED = {
    "description": "Seconds to wait before the next request.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
_RETRY_AFTER_CONFLICT = {
    "description": "Sent when the conflict is with work in progress (a subscription being "
                   "commissioned, a resource in a transitional state, the same "
                   "Idempotency-Key in flight): seconds after which to try again, usually "
                   f"{RETRY_AFTER_SECONDS}.",
    "required": False,
    "schema": {"type": "integer", "minimum": 1},
}


# --- AutoSchema -----------------------------------------------------------------------

_NEVER_REFUSE = (permissions.AllowAny, permissions.IsAuthenticated)


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema with what API.md promises of every operation."""

    def get_description(self) -> str:
        return ""  # only what ``extend_schema(description=...)`` writes for clients

    def get_auth(self):
        auths = super().get_auth()
        # ``[{}]`` would read as "a scheme is required" to generators: an endpoint without
        # credentials (sign-up, token) declares none.
        return [] if all(auth == {} for auth in auths) else auths

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            idempotent = isinstance(self.view, IdempotentMixin)
            parameters.append(IDEMPOTENCY_KEY if idempotent else IDEMPOTENCY_KEY_IGNORED)
        return parameters

    def error_statuses(self) -> set[int]:
        """The error answers the view gives, found from what it does."""
        view, method = self.view, self.method
        checks = view.get_permissions()
        statuses = set()
        if not any(isinstance(check, permissions.AllowAny) for check in checks):
            statuses.add(401)
        if any(not isinstance(check, _NEVER_REFUSE) for check in checks):
            statuses.add(403)
        if method in ("POST", "PUT", "PATCH") or self._get_filter_parameters():
            statuses.add(400)
        if uritemplate.variables(self.path) or self._get_pagination_parameters():
            statuses.add(404)
        if method == "POST" and isinstance(view, IdempotentMixin):
            statuses.add(409)  # the Idempotency-Key used with another body, or still in flight
        if view.get_throttles():
            statuses.add(429)
        return statuses

    def _problem_response(self, status: int, description: str = "") -> dict:
        if not description and status == 403 and any(
                isinstance(check, IsProvider) for check in self.view.get_permissions()):
            description = _STAFF_ONLY
        response = OpenApiResponse(
            ProblemDetailsSerializer,
            description=description or _PROBLEM_DESCRIPTIONS.get(status, ""))
        return self._get_response_for_code(response, str(status),
                                           media_types=[PROBLEM_CONTENT_TYPE])

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        # Errors declared with ``problems()`` are rebuilt under the problem media type.
        for code, response in list(responses.items()):
            if code[0] in "45":
                responses[code] = self._problem_response(int(code),
                                                         response.get("description", ""))
            elif not response.get("description"):
                response["description"] = _SUCCESS_DESCRIPTIONS.get(code, "")
        for status in self.error_statuses():
            if str(status) not in responses:
                responses[str(status)] = self._problem_response(status)
        return dict(sorted(responses.items()))

    def _get_response_headers_for_code(self, status_code, direction="response"):
        headers = super()._get_response_headers_for_code(status_code, direction)
        if status_code == "202":
            headers.setdefault("Location", _LOCATION)
        elif status_code == "429":
            headers.setdefault("Retry-After", _RETRY_AFTER_THROTTLED)
        elif status_code == "409":
            headers.setdefault("Retry-After", _RETRY_AFTER_CONFLICT)
        return headers

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if not has_override(serializer, "description"):
            schema.pop("description", None)  # a docstring speaks of the code, not to clients
        if direction == "response":
            sometimes = {name for name, field in serializer.fields.items()
                         if field.read_only and field._kwargs.get("required") is False}
            required = [name for name in schema.get("properties", {}) if name not in sometimes]
            if required:
                schema["required"] = required
            else:
                schema.pop("required", None)
        return schema
