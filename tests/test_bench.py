"""``manage.py bench provisioning``, ``scale`` and ``stampsim``: tiny runs end to end, in
embedded mode."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"}


@pytest.mark.worker
@pytest.mark.parametrize("pool, concurrency", [("prefork", 2), ("threads", 8)])
def test_a_tiny_run_measures_both_endpoints_ends_every_job_and_stops_its_stack(
        tmp_path, pool, concurrency):
    # given embedded mode in a fresh var directory, whatever services the suite runs on
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env["BUFFET_VAR_DIR"] = str(tmp_path)
    # when a tiny benchmark runs, its worker in the pool asked for
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "provisioning", "--clients", "2",
         "--duration", "3", "--requests", "8", "--pool", pool, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    # then both endpoints were measured, without errors
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["database"] == "sqlite"
    assert (figures["worker_pool"], figures["worker_concurrency"]) == (pool, concurrency)
    assert f"worker {pool} x{concurrency}" in result.stdout
    for phase, status in (("baseline", "201"), ("vm_create", "202")):
        measured = figures[phase]
        assert measured["requests"] == 8, phase
        assert measured["statuses"] == {status: 8} and measured["errors"] == 0, phase
        assert measured["per_second"] > 0, phase
        assert 0 < measured["p50_ms"] <= measured["p95_ms"] <= measured["p99_ms"], phase
    assert figures["ratio"] == pytest.approx(
        figures["vm_create"]["per_second"] / figures["baseline"]["per_second"], abs=0.001)
    # and every VM was deleted once created, and every job ended well
    jobs = figures["jobs"]
    assert jobs["creates"] == jobs["deletes"] == 8
    assert jobs["ended"] == jobs["total"] == jobs["succeeded"] == 16
    assert jobs["per_second"] > 0
    assert "VM create" in result.stdout and "jobs/s" in result.stdout
    assert set(figures["cpu_cores"]) == {"baseline", "vm_create", "drain"}
    # and the deletes came after the creates, whose web CPU was measured alone
    assert figures["deletes"] == "after"
    assert figures["web_cpu_ms_per_create"] > 0
    assert "web CPU per VM create" in result.stdout
    # and the web server it started is gone
    url = re.search(r"Stack up at (\S+?);", result.stderr).group(1)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


@pytest.mark.django_db
def test_the_baseline_endpoint_is_not_mounted_without_the_bench_switch(client):
    assert "BUFFET_BENCH_ENDPOINTS" not in os.environ
    assert client.post("/api/bench/baseline/").status_code == 404


def test_a_tiny_scale_run_answers_every_endpoint_and_counts_queries_that_do_not_grow(
        tmp_path):
    # given embedded mode in a fresh var directory
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env["BUFFET_VAR_DIR"] = str(tmp_path)
    # when a tiny scale benchmark runs
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "scale", "--tenants", "12", "--requests", "2",
         "--stages", "0.1,0.5", "--chart", str(tmp_path / "scale.svg"), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # then every endpoint of both APIs and both portals answered 200, in time figures
    groups = {row["group"] for row in figures["results"]}
    assert groups == {"tenant API", "admin API", "tenant portal", "provider portal"}
    assert {row["status"] for row in figures["results"]} == {200}
    assert all(0 < row["p50_ms"] <= row["p95_ms"] for row in figures["results"])
    # and no page or list makes more queries for 12 tenants than for one
    grown = [(row["url"], row["queries_few"], row["queries_many"])
             for row in figures["results"] if row["queries_many"] != row["queries_few"]]
    assert grown == []
    assert figures["vms"] == 122 and figures["steps"] == 1210
    # and it timed every endpoint at the first rows and after each stage, growing to all
    assert [point["vms"] for point in figures["curve"]] == [2, 14, 62, 122]
    assert all(len(point["p95_ms"]) == len(figures["results"]) for point in figures["curve"])
    # and drew one line an endpoint against the rows, with the goal
    svg = (tmp_path / "scale.svg").read_text()
    assert svg.count("<polyline") == len(figures["results"]) and "goal 50 ms" in svg


@pytest.mark.worker
def test_a_tiny_jobs_run_compares_the_engine_with_celery_alone_in_both_pools(tmp_path):
    # given embedded mode in a fresh var directory
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env["BUFFET_VAR_DIR"] = str(tmp_path)
    # when a tiny jobs benchmark runs with both worker pools
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "jobs", "--requests", "20", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    # then each pool moved every no-op message and ended every job of both runbooks
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["pools"]) == {"prefork", "threads"}
    for pool, measured in figures["pools"].items():
        assert measured["celery"]["tasks"] == 20 and measured["celery"]["per_second"] > 0
        for phase in ("noop", "stamp_call"):
            jobs = measured[phase]
            assert jobs["jobs"] == 20 and jobs["per_second"] > 0, (pool, phase)
            assert 0 < jobs["enqueue_s"] <= jobs["seconds"], (pool, phase)
            assert jobs["ratio_to_celery"] == pytest.approx(
                jobs["per_second"] / measured["celery"]["per_second"], abs=0.001)
        assert set(measured["cpu_cores"]) == {"celery", "noop", "stamp_call"}
    assert "ratio to celery" in result.stdout and "enqueued in s" in result.stdout


def test_a_tiny_stampsim_run_sends_the_same_calls_twice_and_only_the_pruned_stamp_forgets(
        tmp_path):
    # given embedded mode in a fresh var directory
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env["BUFFET_VAR_DIR"] = str(tmp_path)
    # when 300 calls run against a stamp keeping operations one hour (a minute of its
    # clock per call), then against one keeping them all
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "stampsim", "--operations", "300", "--rate",
         "0", "--slice", "100", "--retention-hours", "1", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    pruned, kept = figures["phases"]
    # then both phases made the same 300 calls, without errors, in three slices each
    assert pruned["made"] == kept["made"] and sum(pruned["made"].values()) == 300
    for phase in (pruned, kept):
        assert phase["error_count"] == 0, phase["errors"]
        assert [(s["first"], s["last"]) for s in phase["slices"]] == [
            (1, 100), (101, 200), (201, 300)]
        assert all(0 < s["p50_ms"] <= s["p95_ms"] <= s["max_ms"] for s in phase["slices"])
        assert phase["rows"]["vms"] == phase["vms"] == phase["slices"][-1]["vms"] > 0
        assert phase["rows"]["keys"] == phase["rows"]["operations"]
    # and the stamp that keeps everything holds every call (and the 20 of the set-up);
    # the other only the last hour of its clock (60 calls, and up to 10 more between two
    # moves of the clock)
    assert kept["rows"]["operations"] == 320
    assert 60 <= pruned["rows"]["operations"] <= 71
    assert pruned["operations_bytes"] < kept["operations_bytes"] / 3
    assert "pruned p50" in result.stdout and "operations (rows)" in result.stdout
    # and both stamps it started are stopped
    for phase in (pruned, kept):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{phase['url']}/v1/health", timeout=2)


def test_a_tiny_ipam_run_claims_the_first_free_host_at_each_size(tmp_path):
    # given embedded mode in a fresh var directory
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env["BUFFET_VAR_DIR"] = str(tmp_path)
    # when a tiny ipam benchmark runs, with 0 and 310 addresses held
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "ipam", "--sizes", "0,310", "--requests", "3",
         "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # then each claim took the first free host: past the gateway, past those held, or the
    # hole near the start
    assert [(r["held"], r["hole"], r["address"]) for r in figures["results"]] == [
        (0, False, "10.64.0.2"), (310, False, "10.64.1.56"), (309, True, "10.64.1.46")]
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in figures["results"])
    assert "ipam benchmark" in result.stdout
