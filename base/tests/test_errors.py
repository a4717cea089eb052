"""Error codes are a published contract: clients match on the last segment of a
problem's ``type`` URL, so these values must never change."""

import json

import pytest
from django.conf import settings

from base.api.problems import problem
from base.errors import (
    RETRY_AFTER_SECONDS,
    Conflict,
    ErrorCode,
    Forbidden,
    Invalid,
    NotFound,
    QuotaExceeded,
)

PUBLISHED = {
    "invalid", "not-authenticated", "forbidden", "not-found", "method-not-allowed",
    "not-acceptable", "conflict", "unsupported-media-type", "throttled", "server-error",
    "error", "idempotency-key-reused", "idempotency-key-in-progress", "quota-exceeded",
    "plan-decommissioned", "plan-full", "addon-attached", "subscription-state",
    "subscription-not-ready", "pool-exhausted", "vm-state", "network-default", "network-state",
    "network-in-use", "network-full", "snapshot-state", "job-state", "dr-state", "dr-busy",
    "drill-check", "invitation-invalid", "invitation-expired", "invitation-used",
    "invitation-replaced", "stamp-disabled", "stamp-in-use", "stamp-incapable",
    "login-locked", "otp-required", "otp-invalid", "otp-enrolment-required",
    "otp-staff-device", "token-expired", "invoice-period-open", "task-busy", "task-run-state",
    "task-choices-unavailable",
}


def test_every_published_code_is_a_member_and_nothing_else_is():
    assert {code.value for code in ErrorCode} == PUBLISHED


@pytest.mark.parametrize(("error", "code"), [
    (Invalid, "invalid"), (Forbidden, "forbidden"), (NotFound, "not-found"),
    (Conflict, "conflict"), (QuotaExceeded, "quota-exceeded"),
])
def test_each_kind_of_error_has_its_default_code(error, code):
    assert error("detail").code == code


def test_a_raised_code_reaches_the_problem_as_its_plain_value():
    # given a refusal with its own code
    error = Conflict("A stopping VM cannot be resized.", code=ErrorCode.VM_STATE)
    # when it becomes a problem
    body = problem(error.status, error.detail, code=error.code, title=error.title)
    # then the type ends with the code, and the JSON holds a plain string
    assert body["type"] == f"{settings.BUFFET_PROBLEM_BASE}/vm-state"
    assert json.loads(json.dumps(body))["type"].endswith("/vm-state")


def test_a_status_without_a_rule_gets_its_default_code():
    assert problem(429, "Slow down.")["type"].endswith("/throttled")
    assert problem(418, "Teapot.")["type"].endswith("/error")


class _Thing:
    TRANSITIONAL_STATES = frozenset({"stopping"})

    def __init__(self, state):
        self.state = state


@pytest.mark.parametrize(("state", "retry_after"), [("stopping", RETRY_AFTER_SECONDS),
                                                    ("stopped", None)])
def test_a_conflict_with_a_transitional_state_may_be_retried(state, retry_after):
    error = Conflict.in_state(_Thing(state), f"A {state} thing cannot start.",
                              code=ErrorCode.VM_STATE)
    assert error.retry_after == retry_after and error.code == ErrorCode.VM_STATE


@pytest.mark.parametrize("code", [ErrorCode.SUBSCRIPTION_NOT_READY,
                                  ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS, ErrorCode.DR_BUSY])
def test_conflicts_with_work_in_flight_always_may_be_retried(code):
    assert Conflict("Later.", code=code).retry_after == RETRY_AFTER_SECONDS


def test_other_errors_are_not_cured_by_waiting():
    assert Conflict("No.", code=ErrorCode.IDEMPOTENCY_KEY_REUSED).retry_after is None
    assert Invalid("Bad.").retry_after is None
