"""``buffet run`` refuses a port only when something listens on it."""

import errno
import socket
import time

import pytest

from portal import cli


def _listener(host: str) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((host, 0))
    server.listen()
    return server


def _listener_like_the_servers(port: int) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    return server


def _in_time_wait(port: int) -> bool:
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return any(int(row[1].split(":")[1], 16) == port and row[3] == "06" for row in rows)


def _leave_in_time_wait() -> int:
    """A port that served one connection, closed it first and stopped listening, as a
    server does when it is restarted: its side of the connection stays in TIME_WAIT."""
    server = _listener_like_the_servers(0)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()
    assert client.recv(1) == b""  # the server's FIN
    client.close()
    server.close()
    deadline = time.monotonic() + 10
    while not _in_time_wait(port):
        assert time.monotonic() < deadline, f"port {port} never went to TIME_WAIT"
        time.sleep(0.01)
    return port


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_port_something_listens_on_is_refused_naming_the_port_and_what_to_do(host):
    # given another program listening on the port
    with _listener(host) as other:
        port = other.getsockname()[1]
        # when the port is checked
        problem = cli.port_problem(port, what="web", choose="--port or BUFFET_PORT")
    # then it is refused, saying which port, for what, and how to choose another
    assert problem is not None
    assert f"Port {port} (web) is in use" in problem
    assert f"127.0.0.1:{port}" in problem
    assert "choose another port with --port or BUFFET_PORT" in problem


def test_a_port_left_in_time_wait_after_a_restart_is_free():
    # given a port whose last connection is in TIME_WAIT, which a plain bind refuses
    port = _leave_in_time_wait()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, \
            pytest.raises(OSError) as refused:
        plain.bind(("127.0.0.1", port))
    assert refused.value.errno == errno.EADDRINUSE
    # when it is checked / then it is free, as it is for the servers, which bind it
    assert cli.port_problem(port, what="web", choose="--port") is None
    with _listener_like_the_servers(port) as server:
        assert server.getsockname()[1] == port


@pytest.mark.parametrize("environment_port", [None, "1"])
def test_run_refuses_a_busy_port_before_preparing_anything(
        environment_port, monkeypatch, tmp_path, capsys):
    # given the web port taken by another program (and --port winning over BUFFET_PORT)
    monkeypatch.setenv("BUFFET_VAR_DIR", str(tmp_path))
    if environment_port is None:
        monkeypatch.delenv("BUFFET_PORT", raising=False)
    else:
        monkeypatch.setenv("BUFFET_PORT", environment_port)

    def must_not_run(*args, **kwargs):
        raise AssertionError(f"ran {args} despite a busy port")

    monkeypatch.setattr(cli.subprocess, "run", must_not_run)
    with _listener("127.0.0.1") as other:
        port = other.getsockname()[1]
        # when the portal is started on it
        status = cli.main(["run", "--port", str(port)])
    # then it stops at once with status 2 and says why
    assert status == 2
    assert f"Port {port} (web) is in use" in capsys.readouterr().err
