#!/usr/bin/env python3
"""Set up and run Buffet with nothing but Python 3.11+.

    python3 dev.py run    virtualenv, install, migrate, demo data, then web + worker + beat
                          + two stampsim instances; prints the URL and the logins
    python3 dev.py test   virtualenv, install with test extras, run the whole test suite
    python3 dev.py audit  the installed dependencies against known vulnerabilities (also a
                          step of ``test``)

``run`` and ``test`` also install the ``libvirt`` extra (the libvirt driver) where
libvirt's development files are on the machine (``pkg-config --exists libvirt``; Debian:
``apt-get install libvirt-dev pkg-config``). ``BUFFET_REQUIRE_LIBVIRT=1`` (CI sets it)
makes their absence an error, and the libvirt driver's tests fail instead of skipping.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("BUFFET_VENV", ROOT / ".venv"))
PY = VENV / "bin" / "python"


def _venv() -> None:
    if PY.exists():
        return
    if subprocess.run([sys.executable, "-m", "venv", str(VENV)]).returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        if shutil.which("apt-get") and os.geteuid() == 0:
            print("python3-venv is missing; installing it with apt-get…", flush=True)
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "python3-venv"], check=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        else:
            sys.exit("Cannot create a virtualenv: install python3-venv (Debian) and retry.")


def _install(extras: str) -> None:
    """pip install the project once per content of pyproject.toml and extras."""
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("Installing Python packages…", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    target = f".[{extras}]" if extras else "."
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "-e", target], cwd=ROOT, check=True)
    stamp.write_text(digest)


def _libvirt_buildable() -> bool:
    """libvirt-python builds here: libvirt's development files, a C compiler, Python's
    headers."""
    if shutil.which("pkg-config") is None or not (shutil.which("cc") or shutil.which("gcc")):
        return False
    found = subprocess.run(["pkg-config", "--exists", "libvirt"], check=False)
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return found.returncode == 0 and headers.exists()


def _extras(*extras: str) -> str:
    """``extras``, plus ``libvirt`` where it builds (or is required: then it must)."""
    if _libvirt_buildable():
        return ",".join([*extras, "libvirt"])
    if os.environ.get("BUFFET_REQUIRE_LIBVIRT") == "1":
        sys.exit("BUFFET_REQUIRE_LIBVIRT=1 but libvirt-python cannot be built here: "
                 "apt-get install libvirt-dev pkg-config (and a C compiler).")
    return ",".join(extras)


def _audit_dependencies() -> int:
    """pip-audit over what is installed: a known vulnerability with a fixed release fails.

    A dependency the vulnerability service could not answer for is listed, not failed:
    where the service cannot be reached nothing is known either way, and the run says so.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        try:
            audit = subprocess.run(
                [str(PY), "-m", "pip_audit", "--format", "json", "--progress-spinner", "off",
                 "--timeout", "10", "--output", str(report)],
                capture_output=True, text=True, timeout=600)
            problem = audit.stderr.strip().splitlines()[-1:] if not report.exists() else None
        except subprocess.TimeoutExpired:
            problem = ["no answer within 600 s"]
        if problem is not None:
            # No report is no knowledge, not a vulnerability: say so and go on.
            print(f"dependency audit: not audited ({' '.join(problem) or 'no report'})",
                  file=sys.stderr)
            return 0
        dependencies = json.loads(report.read_text())["dependencies"]
    own = {"buffet"}
    fixable, unfixed, skipped = [], [], []
    for dep in dependencies:
        if dep["name"] in own:
            continue
        if "skip_reason" in dep:
            skipped.append(dep)
        for vuln in dep.get("vulns", []):
            (fixable if vuln.get("fix_versions") else unfixed).append((dep, vuln))
    for dep, vuln in fixable:
        print(f"dependency audit: {dep['name']} {dep['version']} has {vuln['id']}, fixed in "
              f"{', '.join(vuln['fix_versions'])}", file=sys.stderr)
    for dep, vuln in unfixed:
        print(f"dependency audit: {dep['name']} {dep['version']} has {vuln['id']} (no fixed "
              "release yet)")
    audited = len(dependencies) - len(skipped) - sum(dep["name"] in own for dep in dependencies)
    print(f"dependency audit: {audited} audited, {len(fixable)} fixable and {len(unfixed)} "
          f"unfixed known vulnerabilities, {len(skipped)} not audited")
    if skipped and not audited:
        print("dependency audit: the vulnerability service answered for none of them "
              f"({skipped[0]['skip_reason']}): nothing is known either way", file=sys.stderr)
    return 1 if fixable else 0


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if command == "run":
        _venv()
        _install(_extras())
        os.execv(str(PY), [str(PY), "-m", "portal.cli", "run", *rest])
    if command == "test":
        _venv()
        _install(_extras("test"))
        os.chdir(ROOT)
        lint = subprocess.run([str(PY), "-m", "ruff", "check", "."])
        if lint.returncode != 0:
            return lint.returncode
        # The layers of DESIGN.md as import-linter contracts (pyproject.toml).
        layers = subprocess.run([str(VENV / "bin" / "lint-imports"), "--no-cache"])
        if layers.returncode != 0:
            return layers.returncode
        if not rest and (audited := _audit_dependencies()) != 0:
            return audited
        workers = os.environ.get("BUFFET_TEST_WORKERS", "auto")
        parallel = ["-n", workers, "--dist", "loadgroup"] if workers != "0" else []
        if rest:
            steps = [[*parallel, *rest]]
        else:
            # The whole suite: most of it in parallel, then the tests that xdist would lose
            # (schemathesis's generated cases) in a step of their own.
            steps = [[*parallel, "-m", "not serial"], ["-p", "no:xdist", "-m", "serial"]]
        for step in steps:
            tests = subprocess.run([str(PY), "-m", "pytest", *step])
            # pytest says 5 when it collected nothing: that is a failure of the suite here.
            # (conftest.py fails a run that executed fewer tests than it collected.)
            if tests.returncode != 0:
                return 1 if tests.returncode == 5 else tests.returncode
        return 0
    if command == "audit":
        _venv()
        _install("test")
        return _audit_dependencies()
    print(__doc__)
    return 0 if command in {"help", "-h", "--help"} else 2


if __name__ == "__main__":
    sys.exit(main())
