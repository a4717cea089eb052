"""docker-compose.yml is valid and runs the same commands as the local runner."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from portal import processes

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid():
    if shutil.which("docker-compose") is None:
        if os.environ.get("BUFFET_REQUIRE_SERVICES") == "1":
            pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(["docker-compose", "config", "-q"], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ,
                                            "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.returncode == 0, result.stderr


def test_compose_has_every_process_with_health_checks_and_volumes():
    services = COMPOSE["services"]
    assert {"postgres", "redis", "migrate", "web", "web-provider", "worker", "worker-stamps",
            "beat", "stampsim-a", "stampsim-b"} <= set(services)
    for name in ("postgres", "redis", "web", "web-provider", "stampsim-a", "stampsim-b"):
        assert "healthcheck" in services[name], name
    assert {"pgdata", "redisdata"} <= set(COMPOSE["volumes"])


@pytest.mark.parametrize("service, command", [
    ("web", processes.web(8000, host="0.0.0.0")),  # noqa: S104 - inside the container
    # the provider's face on a listener of its own (base.faces)
    ("web-provider", processes.web(8001, host="0.0.0.0")),  # noqa: S104
    ("worker", processes.worker(queues="default")),
    # the stamps' steps wait on HTTP: threads, not a process each
    ("worker-stamps", processes.worker(queues="stamp.stamp-a,stamp.stamp-b", concurrency=8,
                                       pool="threads")),
    ("beat", processes.beat()),
    ("migrate", processes.migrate()),
    ("stampsim-a", processes.stampsim("stamp-a", 8101, "/var/lib/buffet/stampsim/stamp-a",
                                      host="0.0.0.0")),  # noqa: S104
    ("stampsim-b", processes.stampsim("stamp-b", 8102, "/var/lib/buffet/stampsim/stamp-b",
                                      host="0.0.0.0")),  # noqa: S104
])
def test_compose_names_the_commands_the_project_runs(service, command):
    assert COMPOSE["services"][service]["command"] == command


def test_dockerfile_serves_the_web_command():
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert yaml.safe_load(cmd[4:]) == processes.web(8000, host="0.0.0.0")  # noqa: S104
