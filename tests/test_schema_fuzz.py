"""No input makes the API answer 500, and every answer is one the schema documents:
schemathesis generates requests from the schema that ``/api/schema/`` serves, sends each
through the Django test client with a real token (staff for ``/admin/``, a tenant owner
otherwise) and checks the answer's status code, media type, headers and body against
the operation's documented responses."""

import json
from urllib.parse import urlencode

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Under pytest-xdist schemathesis's generated cases are collected but never run (2 of 88
# items ran); ``dev.py test`` runs this file in a step of its own, without xdist.
pytestmark = pytest.mark.serial

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


def as_schemathesis_response(response, method: str, path: str, body, headers):
    """The Django test client's answer in the shape schemathesis's checks read."""
    request = requests.Request(method, f"http://testserver{path}", headers=headers,
                               data=body or None).prepare()
    return schemathesis.Response(
        status_code=response.status_code,
        headers={name: [value] for name, value in response.headers.items()},
        content=b"".join(response.streaming_content) if response.streaming  # a CSV export
        else response.content, request=request, elapsed=0.0, verify=False)


@pytest.fixture
def tokens(signup, staff, catalog):
    owner = signup()
    owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"], "name": "fuzz"},
               format="json")
    return {"tenant": owner.client._credentials["HTTP_AUTHORIZATION"],
            "staff": staff.client._credentials["HTTP_AUTHORIZATION"]}


def test_the_served_schema_is_the_one_fuzzed(anon, db):
    served = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert set(served["paths"]) == set(schema.raw_schema["paths"])


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, tokens, anon):
    caller = "staff" if case.path.startswith("/api/v1/admin/") else "tenant"
    path = case.formatted_path + (f"?{urlencode(case.query, doseq=True)}" if case.query else "")
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (case.headers or {}).items()}
    extra["HTTP_AUTHORIZATION"] = tokens[caller]
    body = case.body
    if body is None or isinstance(body, schemathesis.core.NotSet):
        body = ""
    elif not isinstance(body, bytes):
        body = json.dumps(body)
    response = anon.generic(case.method, path, body, content_type="application/json", **extra)
    assert response.status_code < 500, (case.method, path, body, response.content[:500])
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json", (
            case.method, path, response.status_code, response.content[:300])
    headers = {**(case.headers or {}), "Authorization": tokens[caller]}
    case.validate_response(as_schemathesis_response(response, case.method, path, body, headers),
                           checks=CHECKS, headers=headers)
