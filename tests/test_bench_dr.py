"""``manage.py bench dr``: a tiny run end to end, in embedded mode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"}


@pytest.mark.worker
def test_a_tiny_dr_run_protects_and_fails_over_at_each_latency(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env["BUFFET_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "dr", "--vms", "3", "--latencies", "0,10",
         "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [(r["latency_ms"], r["vms"]) for r in rows] == [(0, 3), (10, 3)]
    assert all(r["protect_seconds"] > 0 and r["failover_seconds"] > 0 for r in rows)
    assert "protect (s)" in result.stdout
