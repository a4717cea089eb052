"""Response headers every page carries, and Django's deployment checks on the production
settings."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_pages_carry_a_csp_without_inline_scripts_and_the_other_headers(client):
    response = client.get("/login/")
    assert response.status_code == 200
    csp = dict(part.strip().split(" ", 1) for part in
               response["Content-Security-Policy"].split(";") if part.strip())
    assert csp["script-src"] == "'self'" and "unsafe" not in csp["script-src"]
    assert csp["default-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'" and "unsafe" not in csp["style-src"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    # and no page of ours holds an inline script for the policy to block
    assert "<script>" not in response.content.decode()


@pytest.mark.django_db
def test_the_api_docs_start_from_a_script_file_not_an_inline_one(client):
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page.replace("<script src", "")
    assert client.get("/api/docs/?script=").status_code == 200


def test_the_deployment_checks_pass_on_the_production_settings(tmp_path):
    env = {**os.environ, "BUFFET_TLS": "1", "BUFFET_DEBUG": "0",
           "BUFFET_SECRET_KEY": secrets.token_urlsafe(50),
           "BUFFET_ALLOWED_HOSTS": "portal.example.com",
           "BUFFET_VAR_DIR": str(tmp_path)}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests, never in production
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy",
                             "--fail-level", "WARNING"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_behind_tls_cookies_are_secure_and_hsts_is_sent(tmp_path):
    env = {**os.environ, "BUFFET_TLS": "1", "BUFFET_SECRET_KEY": secrets.token_urlsafe(50),
           "BUFFET_VAR_DIR": str(tmp_path)}
    script = ("from django.conf import settings as s; "
              "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1].split() == ["True", "True", "31536000"], (
        result.stdout + result.stderr)
