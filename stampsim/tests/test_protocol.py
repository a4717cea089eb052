"""The client protocol of the stampsim API (``stampsim.protocol``), shared by the portal's
driver and a stamp's peer calls: tested over fake transports, without sockets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from stampsim import protocol
from stampsim.errors import ApiError, ErrorCode
from stampsim.peers import PeerClient, PeerUnreachable

FAST = protocol.Polling(first=0.001, growth=2.0, longest=0.01)


def answers(*replies: tuple[int, Any] | Exception):
    """A transport answering ``replies`` in turn, recording the timeout of each try."""
    tries: list[float] = []
    pending = list(replies)

    def send(timeout: float) -> tuple[int, Any]:
        tries.append(timeout)
        reply = pending.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return send, tries


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def test_the_headers_carry_the_token_and_the_key():
    assert protocol.request_headers(token="s3cret", key="k-1") == {
        "Accept": "application/json", "Idempotency-Key": "k-1", "Authorization": "Bearer s3cret"}
    assert protocol.request_headers() == {"Accept": "application/json"}


def test_no_answer_and_5xx_are_tried_again_a_4xx_never():
    # given a transport that fails, answers 503, then refuses
    send, tries = answers(protocol.NoAnswer("connection refused"),
                          (503, {"error": "injected-failure", "detail": "fault"}),
                          (409, {"error": "state", "detail": "VM is running"}))
    # when
    status, payload = protocol.exchange(send, deadline=soon(), attempts=5, backoff=0)
    # then the refusal is the answer, after three tries
    assert (status, payload["error"], len(tries)) == (409, "state", 3)


def test_giving_up_says_the_last_reason_and_the_tries():
    send, tries = answers(protocol.NoAnswer("connection refused"),
                          (503, {"error": "injected-failure", "detail": "fault"}))
    with pytest.raises(protocol.Unanswered) as unanswered:
        protocol.exchange(send, deadline=soon(), attempts=2, backoff=0)
    assert str(unanswered.value) == "HTTP 503 injected-failure: fault after 2 attempts"
    assert unanswered.value.reason == "HTTP 503 injected-failure: fault"


def test_no_pause_runs_past_the_deadline():
    # given a first pause longer than what is left of the call
    send, tries = answers(protocol.NoAnswer("timed out"), (200, {}))
    # when the first try gets no answer, then the call gives up at once
    with pytest.raises(protocol.Unanswered, match="timed out after 1 attempt$"):
        protocol.exchange(send, deadline=soon(0.5), attempts=3, backoff=10)
    assert len(tries) == 1 and 0 < tries[0] <= 0.5


def test_what_is_not_json_reads_as_a_bad_gateway():
    assert protocol.decode_answer(200, b"<html>proxy</html>") == (
        502, {"error": protocol.BAD_ANSWER, "detail": "HTTP 200, not JSON"})
    assert protocol.decode_answer(201, b"") == (201, {})
    assert protocol.decode_answer(200, b"[1, 2]") == (200, {})


def test_refusals_decode_the_same_from_an_answer_or_an_operation():
    # given a refusal answered at once, and the same one from an operation that failed
    answer = protocol.refusal(409, {"error": "capacity", "detail": "no room"})
    with pytest.raises(ApiError) as from_operation:
        protocol.result_of({"id": "op-1", "state": "failed",
                            "error": {"code": "capacity", "detail": "no room", "status": 409}})
    # then both read the same
    assert (answer.status, answer.code, answer.detail) == (409, "capacity", "no room")
    assert repr(from_operation.value) == repr(answer)
    # an answer naming nothing
    bare = protocol.refusal(418, None)
    assert (bare.code, bare.detail) == ("", "HTTP 418")


def test_an_operation_is_polled_until_it_has_ended():
    # given an operation still running for two more looks
    looks = iter([{"id": "op-1", "state": "running"},
                  {"id": "op-1", "state": "succeeded", "result": {"id": "vm-1"}}])
    paths: list[str] = []

    def fetch(path: str) -> dict[str, Any]:
        paths.append(path)
        return {"operation": next(looks)}

    # when
    ended = protocol.wait_for({"id": "op-1", "state": "running"}, fetch, deadline=soon(),
                              polling=FAST)
    # then
    assert protocol.result_of(ended) == {"id": "vm-1"}
    assert paths == ["/v1/operations/op-1"] * 2


def test_an_operation_past_the_deadline_is_still_running():
    def fetch(path: str) -> dict[str, Any]:
        return {"operation": {"id": "op-1", "state": "running"}}

    with pytest.raises(protocol.StillRunning) as still:
        protocol.wait_for({"id": "op-1", "state": "running"}, fetch, deadline=soon(0.02),
                          polling=FAST)
    assert still.value.operation["id"] == "op-1"


def test_polling_grows_to_its_longest():
    delays = protocol.Polling(first=0.02, growth=1.5, longest=0.05).delays()
    assert [round(next(delays), 3) for _ in range(4)] == [0.02, 0.03, 0.045, 0.05]


class FakePeers(PeerClient):
    def __init__(self, *replies: tuple[int, Any] | Exception) -> None:
        super().__init__(timeout=2.0, attempts=2, backoff=0.0)
        self.send_one, self.tries = answers(*replies)

    def send(self, endpoint, token, method, path, body, key, timeout):
        return self.send_one(timeout)


def test_a_peers_refusal_is_relayed_with_its_status_and_code():
    peers = FakePeers((202, {"operation": {"id": "op-1", "state": "failed", "error": {
        "code": "capacity", "detail": "no room", "status": 409}}}))
    with pytest.raises(ApiError) as refused:
        peers.call("http://b", None, "POST", "/v1/containers", key="k")
    assert repr(refused.value) == "ApiError(409, 'capacity', 'target stamp: no room')"


def test_an_unreachable_peer_is_a_502_target_unreachable():
    peers = FakePeers(PeerUnreachable("connection refused"), PeerUnreachable("connection refused"))
    with pytest.raises(ApiError) as unreachable:
        peers.call("http://b", None, "GET", "/v1/health")
    assert (unreachable.value.status, unreachable.value.code) == (
        502, ErrorCode.TARGET_UNREACHABLE)
    assert unreachable.value.detail == "target stamp http://b unreachable: connection refused"
