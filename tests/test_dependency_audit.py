"""dev.py's dependency audit: what fails the suite and what is only reported."""

import json
import sys

import pytest

import dev


def fake_pip_audit(tmp_path, monkeypatch, dependencies):
    """``PY -m pip_audit ... --output F`` writes this report, as pip-audit would."""
    report = json.dumps({"dependencies": dependencies, "fixes": []})
    script = tmp_path / "python"
    script.write_text(f"#!{sys.executable}\n"
                      "import sys\n"
                      "out = sys.argv[sys.argv.index('--output') + 1]\n"
                      f"open(out, 'w').write({report!r})\n")
    script.chmod(0o755)
    monkeypatch.setattr(dev, "PY", script)


def test_a_known_vulnerability_with_a_fixed_release_fails(tmp_path, monkeypatch, capsys):
    fake_pip_audit(tmp_path, monkeypatch, [
        {"name": "django", "version": "5.2.0", "vulns": [
            {"id": "PYSEC-2099-1", "fix_versions": ["5.2.1"], "description": "x"}]},
        {"name": "amqp", "version": "5.4.2", "vulns": []},
    ])
    assert dev._audit_dependencies() == 1
    err = capsys.readouterr().err
    assert "django 5.2.0 has PYSEC-2099-1, fixed in 5.2.1" in err


@pytest.mark.parametrize("vulns", [[], [{"id": "GHSA-none", "fix_versions": []}]])
def test_no_fixable_vulnerability_passes_and_says_what_was_audited(
        tmp_path, monkeypatch, capsys, vulns):
    fake_pip_audit(tmp_path, monkeypatch, [
        {"name": "celery", "version": "5.5.0", "vulns": vulns},
        {"name": "kombu", "skip_reason": "Dependency not found on PyPI"},
        {"name": "buffet", "skip_reason": "Dependency not found on PyPI"},
    ])
    assert dev._audit_dependencies() == 0
    out = capsys.readouterr().out
    assert (f"1 audited, 0 fixable and {len(vulns)} unfixed known vulnerabilities,"
            " 1 not audited") in out


def test_a_service_that_answers_for_nothing_is_said_plainly(tmp_path, monkeypatch, capsys):
    fake_pip_audit(tmp_path, monkeypatch, [
        {"name": "amqp", "skip_reason": "Dependency not found on PyPI"}])
    assert dev._audit_dependencies() == 0
    assert "answered for none of them" in capsys.readouterr().err
