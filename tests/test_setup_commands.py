"""The README's two commands on a fresh clone: ``./run_app.sh`` with the weights' sources
unreachable installs nothing new (the venv is reused through ``NOSTALGIA_VENV``), falls back to
fixture weights, says so, and serves the app with its fixture banner; ``./run_tests.sh`` is what CI runs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _smallest_checkpoint() -> str:
    from weights import registry

    sized = [c for c in registry.all_checkpoints() if c.size]
    return min(sized, key=lambda c: c.size).id


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "./run_tests.sh" in ci and "rm -rf .ci/venv" in ci and "NOSTALGIA_LINT=1" in ci
    assert "./run_app.sh" in readme and "./run_tests.sh" in readme
    for script in ("run_app.sh", "run_tests.sh"):
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_run_app_on_a_fresh_clone_offline_serves_the_app_with_fixture_weights(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=300)
    port = _free_port()
    unreachable = "http://127.0.0.1:9"  # nothing listens there: every download fails at once
    env = {
        **os.environ,
        "NOSTALGIA_VENV": sys.prefix,  # reuse this environment: nothing to download or build
        "PIP_NO_INDEX": "1",
        "NOSTALGIA_WEIGHTS": _smallest_checkpoint(),
        "NOSTALGIA_WEIGHTS_DIR": str(tmp_path / "weights"),
        "NOSTALGIA_OUTPUT_DIR": str(tmp_path / "outputs"),
        "NOSTALGIA_PORT": str(port),
        "HTTPS_PROXY": unreachable, "HTTP_PROXY": unreachable, "https_proxy": unreachable, "http_proxy": unreachable,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }  # fmt: skip
    log = tmp_path / "run_app.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["./run_app.sh"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline, config = time.monotonic() + 600, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as response:
                    config = response.read().decode()
                break
            except OSError:
                time.sleep(2)
        text = log.read_text(errors="replace")
        assert config is not None, f"the app did not answer (exit status {proc.poll()}):\n{text[-3000:]}"
        assert "fixture weights: outputs are not real" in config
        assert "Writing FIXTURE weights" in text and "launching the app" in text
        assert (tmp_path / "weights").is_dir() and any((tmp_path / "weights").rglob("*"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("script", ["run_app.sh", "run_tests.sh"])
def test_the_cpu_wheel_option_installs_pytorchs_cpu_wheels_before_the_requirements(tmp_path: Path, script: str) -> None:
    """``NOSTALGIA_TORCH=cpu``: PyTorch's CPU index is unreachable here, so the environment's python
    is a recorder; what is checked is the order and the arguments the script gives pip."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    recorder = venv / "bin" / "python"
    recorder.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n')
    recorder.chmod(0o755)
    env = {**os.environ, "NOSTALGIA_VENV": str(venv), "NOSTALGIA_TORCH": "cpu", "NOSTALGIA_LINT": "0"}
    subprocess.run(["bash", str(ROOT / script)], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True)
    lines = calls.read_text().splitlines()
    torch_line = next(i for i, line in enumerate(lines) if "download.pytorch.org/whl/cpu" in line)
    requirements = next(i for i, line in enumerate(lines) if "-r requirements.txt" in line)
    assert torch_line < requirements
    assert lines[torch_line].startswith("-m pip install") and "torch" in lines[torch_line] and "torchvision" in lines[torch_line]
    assert "--index-url https://download.pytorch.org/whl/cpu" in lines[torch_line]
