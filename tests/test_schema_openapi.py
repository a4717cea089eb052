"""The OpenAPI document at /api/schema/ tells what the server sends (API.md, "General"):
every operation's error answers as one ProblemDetails, the Idempotency-Key on every POST,
Location and Retry-After, required fields, stable enum names, the Token scheme, and
descriptions written for clients."""

import inspect
import re

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

PROBLEM = "application/problem+json"
METHODS = ("get", "post", "put", "patch", "delete")
PROBLEM_REF = "#/components/schemas/ProblemDetails"
PUBLIC = ("/api/v1/auth/signup/", "/api/v1/auth/token/", "/api/v1/auth/invitations/accept/")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def label(path, method):
    return f"{method.upper()} {path}"


def test_the_served_document_is_the_one_tested(anon, db, schema):
    served = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert served["paths"].keys() == schema["paths"].keys()
    assert served["components"]["schemas"].keys() == schema["components"]["schemas"].keys()


def test_the_document_is_valid_openapi_and_generates_without_warnings(db, tmp_path):
    # --fail-on-warn: no name collisions, no unresolved serializer, no guessed enum name
    call_command("spectacular", "--validate", "--fail-on-warn",
                 "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")


# --- errors ---------------------------------------------------------------------------

def test_every_error_answer_is_a_problem_details(schema):
    errors = 0
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                errors += 1
                assert response["content"] == {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}, (
                    label(path, method), status)
                assert response["description"], (label(path, method), status)
    assert errors > 300


def expected_errors(path, method, operation) -> set[str]:
    """What API.md says each kind of operation can answer besides success."""
    public = path in PUBLIC
    expected = set() if public else {"401", "403"}
    if path.startswith("/api/v1/auth/tokens/"):
        expected -= {"403"}  # the caller's own tokens: anyone authenticated may
    if path == "/api/v1/auth/token/":
        expected |= {"401"}
    if public:
        expected |= {"429"}
    if method in ("post", "put", "patch"):
        expected |= {"400"}
    if method == "post" and path != "/api/v1/auth/token/":
        expected |= {"409"}  # an Idempotency-Key reused with another body
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    if names - {"page", "page_size"}:
        expected |= {"400"}  # the filters are validated
    if "{" in path or "page" in names:
        expected |= {"404"}
    return expected


def test_every_operation_lists_the_errors_it_can_answer(schema):
    for path, method, operation in operations(schema):
        errors = {s for s in operation["responses"] if s[0] in "45"}
        missing = expected_errors(path, method, operation) - errors
        assert not missing, (label(path, method), missing)
        assert errors <= {"400", "401", "403", "404", "409", "429"}, label(path, method)


@pytest.mark.parametrize(("path", "method", "errors"), [
    # a list that validates no query parameter has no 400
    ("/api/v1/plans/", "get", {"401", "403", "404"}),
    ("/api/v1/tenant/", "get", {"401", "403"}),
    ("/api/v1/auth/signup/", "post", {"400", "409", "429"}),
    # 403: staff without an authenticator yet
    ("/api/v1/auth/token/", "post", {"400", "401", "403", "429"}),
    # what a body can name: a plan the tenant cannot see
    ("/api/v1/subscriptions/", "post", {"400", "401", "403", "404", "409"}),
    # refusals that depend on state
    ("/api/v1/vms/{id}/", "delete", {"401", "403", "404", "409"}),
    ("/api/v1/admin/plans/{id}/", "patch", {"400", "401", "403", "404", "409"}),
    ("/api/v1/admin/stamps/{id}/", "patch", {"400", "401", "403", "404"}),
    ("/api/v1/admin/network-mappings/{id}/", "delete", {"401", "403", "404"}),
])
def test_some_operations_exactly(schema, path, method, errors):
    responses = schema["paths"][path][method]["responses"]
    assert {s for s in responses if s[0] in "45"} == errors


def test_admin_operations_are_403_for_anyone_but_staff(schema):
    admin = [(p, m, o) for p, m, o in operations(schema) if p.startswith("/api/v1/admin/")]
    assert len(admin) > 40
    for path, method, operation in admin:
        assert "staff" in operation["responses"]["403"]["description"], label(path, method)


def test_problem_details_describe_field_errors_and_quota_excess(schema):
    components = schema["components"]["schemas"]
    problem = components["ProblemDetails"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    errors = problem["properties"]["errors"]["additionalProperties"]["oneOf"]
    assert {"type": "array", "items": {"type": "string"}} in errors
    assert {"$ref": "#/components/schemas/QuotaExcess"} in errors
    assert set(components["QuotaExcess"]["required"]) == {"requested", "used", "limit"}


# --- headers --------------------------------------------------------------------------

def test_every_post_declares_the_idempotency_key(schema):
    posts = [(p, o) for p, m, o in operations(schema) if m == "post"]
    assert len(posts) > 25
    for path, operation in posts:
        headers = [p for p in operation.get("parameters", [])
                   if p["in"] == "header" and p["name"] == "Idempotency-Key"]
        assert len(headers) == 1, path
        assert headers[0]["schema"] == {"type": "string", "maxLength": 255}
        assert not headers[0].get("required")


def test_every_202_declares_location_and_every_429_and_409_retry_after(schema):
    seen = {"202": 0, "409": 0, "429": 0}
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        if "202" in responses:
            seen["202"] += 1
            location = responses["202"]["headers"]["Location"]
            assert location["required"] is True, label(path, method)
        if "429" in responses:
            seen["429"] += 1
            assert responses["429"]["headers"]["Retry-After"]["required"] is True
        if "409" in responses:
            seen["409"] += 1
            assert responses["409"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert seen["202"] > 15 and seen["409"] > 25 and seen["429"] == len(PUBLIC)


# --- shapes ---------------------------------------------------------------------------

API_MD_FIELDS = {
    "Job": {"id", "runbook", "state", "steps", "error", "created_at", "finished_at",
            "progress", "subscription", "resource_type", "resource_id"},
    "JobStep": {"name", "state", "started_at", "finished_at", "log"},
    "Vm": {"id", "subscription", "name", "template", "vcpus", "memory_mb", "disk_gb",
           "network", "state"},
    "VmAccepted": {"id", "state", "job"},
    "Subscription": {"id", "plan", "name", "state", "job", "error"},
    "Network": {"id", "subscription", "name", "cidr", "state"},
    "SnapshotAccepted": {"id", "name", "state", "job"},
    "JobAccepted": {"job"},
    "Quota": {"vcpus", "memory_mb", "storage_gb", "vms", "networks", "snapshots"},
    "Plan": {"id", "name", "state", "cloud", "quotas", "templates", "addons",
             "max_subscriptions", "price_monthly", "subscription_count"},
}


@pytest.mark.parametrize("name", sorted(API_MD_FIELDS))
def test_fields_the_server_always_sends_are_required(schema, name):
    component = schema["components"]["schemas"][name]
    assert API_MD_FIELDS[name] <= set(component["required"])
    # every property of an answer is sent, so every one is required
    assert set(component["required"]) == set(component["properties"])


def test_requests_do_not_require_what_the_server_fills_in(schema):
    plan = schema["components"]["schemas"]["PlanRequest"]
    assert set(plan["required"]) == {"name", "cloud"}
    assert not {"id", "created_at", "subscription_count"} & set(plan["properties"])
    vm = schema["components"]["schemas"]["VmRequest"]
    assert set(vm["required"]) == {"subscription", "name", "template", "vcpus", "memory_mb",
                                   "disk_gb"}


def response_ref(schema, path, method, status):
    content = schema["paths"][path][method]["responses"][status]["content"]
    return content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]


def test_tenant_and_provider_templates_are_separate_shapes(schema):
    components = schema["components"]["schemas"]
    tenant = response_ref(schema, "/api/v1/templates/{id}/", "get", "200")
    provider = response_ref(schema, "/api/v1/admin/templates/{id}/", "get", "200")
    assert (tenant, provider) == ("Template", "ProviderTemplate")
    assert "cloud" not in components[tenant]["properties"]
    assert {"cloud", "image"} <= set(components[provider]["required"])
    plan_templates = components["PublicPlan"]["properties"]["templates"]["items"]
    assert plan_templates == {"$ref": "#/components/schemas/Template"}


def test_listing_and_taking_checkpoints_are_separate_operations(schema):
    item = schema["paths"]["/api/v1/vms/{id}/snapshots/"]
    assert set(item["get"]["responses"]) == {"200", "401", "403", "404"}
    assert set(item["post"]["responses"]) == {"202", "400", "401", "403", "404", "409"}
    assert response_ref(schema, "/api/v1/vms/{id}/snapshots/", "get", "200") == (
        "PaginatedSnapshotList")
    assert response_ref(schema, "/api/v1/vms/{id}/snapshots/", "post", "202") == (
        "SnapshotAccepted")
    # the VMs' filters are not the checkpoints'
    queries = {p["name"] for p in item["get"]["parameters"] if p["in"] == "query"}
    assert queries == {"page", "page_size"}
    assert not [p for p in item["post"]["parameters"] if p["in"] == "query"]


def test_templates_take_a_subscription(schema):
    parameters = schema["paths"]["/api/v1/templates/"]["get"]["parameters"]
    subscription = next(p for p in parameters if p["name"] == "subscription")
    assert subscription["in"] == "query" and subscription["schema"]["format"] == "uuid"


# --- names ----------------------------------------------------------------------------

STABLE_ENUMS = {
    "JobState", "StepState", "VmState", "NetworkState", "SnapshotState", "SubscriptionState",
    "PlanState", "AddOnKind", "Role", "StampHealth", "StampDriver", "ProtectionState",
    "ProtectedVmState", "ActiveSite", "DrillKind", "FailoverMode", "TokenState",
    "Meter", "MissingUsageState", "UsageGranularity",
    "InvoiceState", "UsageMeter",
    "TaskRunState", "HideableRole",
}


def test_enums_have_stable_names(schema):
    enums = {name for name, component in schema["components"]["schemas"].items()
             if "enum" in component}
    assert not [name for name in enums if re.fullmatch(r"\w*\d+Enum", name)]
    assert not [name for name in enums if name.endswith("Enum")]
    assert enums == STABLE_ENUMS
    job_state = schema["components"]["schemas"]["Job"]["properties"]["state"]
    assert job_state == {"$ref": "#/components/schemas/JobState"}


def test_the_token_scheme_is_token_not_bearer(schema):
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header",
                                                               "Authorization")
    assert "Token <key>" in scheme["description"]
    tenant = schema["paths"]["/api/v1/vms/"]["get"]["security"]
    assert {"tokenAuth": []} in tenant
    assert "Token <key>" in schema["info"]["description"]
    # sign-up, token and invitations take no credentials: no scheme is asked for
    for path in PUBLIC:
        assert not schema["paths"][path]["post"].get("security"), path


# --- descriptions ---------------------------------------------------------------------

def every_description(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            else:
                yield from every_description(value)
    elif isinstance(node, list):
        for value in node:
            yield from every_description(value)


def api_views():
    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "cls", None)
                if view is not None:
                    yield view

    return {view for view in walk(get_resolver().url_patterns)
            if view.__module__.split(".")[0] in {"tenants", "fabric", "plans", "provisioning",
                                                  "dr_addon", "billing"}}


def docstrings():
    """The code's own docstrings: of the API's views, their handlers and serializers."""
    from rest_framework import serializers

    found = set()
    for view in api_views():
        for klass in inspect.getmro(view):
            if klass.__module__.split(".")[0] in {"rest_framework", "builtins"}:
                continue
            for obj in [klass, *vars(klass).values()]:
                doc = inspect.getdoc(obj) if (inspect.isclass(obj) or callable(obj)) else None
                if doc:
                    found.add(doc)
        for candidate in vars(inspect.getmodule(view)).values():
            if (inspect.isclass(candidate) and issubclass(candidate, serializers.BaseSerializer)
                    and candidate.__doc__):
                found.add(inspect.getdoc(candidate))
    return found


def test_descriptions_are_written_for_clients_not_taken_from_docstrings(schema):
    # phrases of internal docstrings that used to be published
    leaked = ["Provider CRUD whose writes go through", "Mix into an APIView",
              "Not idempotent by key", "Base of every"]
    descriptions = list(every_description(schema))
    for phrase in leaked:
        assert not [d for d in descriptions if phrase in d], phrase
    lines = {line.strip() for doc in docstrings() for line in doc.splitlines()
             if len(line.strip()) > 20}
    assert len(lines) > 20
    for description in descriptions:
        assert not [line for line in lines if line in description], description


def test_every_operation_has_a_summary(schema):
    for path, method, operation in operations(schema):
        assert operation.get("summary"), label(path, method)
