"""The chaos command at a small size: VM jobs while pool processes and the stamp are
SIGKILLed, on the embedded broker and on the broker of the settings (CI's Redis), with
every count of its report zero (the command exits non-zero otherwise)."""

import json
import os
import subprocess
import sys

import pytest

from tests.processes import ROOT
from tests.processes import test_database_url as database_url

pytestmark = [pytest.mark.worker, pytest.mark.xdist_group("chaos")]

JOBS = 40
TIMEOUT = 420  # seconds the whole command may take on two loaded cores


@pytest.mark.parametrize("broker", ["embedded", "settings"])
def test_a_small_chaos_run_loses_nothing(broker, transactional_db, tmp_path):
    # given the run's own data directory, and the test database of this session
    env = {**os.environ, "BUFFET_VAR_DIR": str(tmp_path), "DATABASE_URL": database_url()}
    # when the chaos command runs 40 jobs with pool processes and stampsim killed
    done = subprocess.run(
        [sys.executable, "manage.py", "chaos", "--jobs", str(JOBS), "--clients", "3",
         "--faults", "pool-child,stampsim-restart", "--fault-every", "1.5",
         "--drain-timeout", "120", "--broker", broker, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    # then every job ended and nothing was lost, applied twice or leaked
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["jobs"] == JOBS
    assert sum(figures["faults"].values()) >= 2, figures["faults"]
    assert (figures["not_ended"], figures["run_twice"], figures["leaked_on_stamp"],
            figures["missing_on_stamp"], figures["quota_drift"]) == (0, 0, 0, 0, 0)
