"""The app shell, driven through gradio_client like any API user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from weights import registry

ROOT = Path(__file__).resolve().parents[1]


def test_models_endpoint_lists_every_checkpoint(app_client) -> None:
    rows = app_client.predict(api_name="/models")
    table = rows["data"] if isinstance(rows, dict) else rows
    ids = [r[0] for r in table]
    assert ids == [c.id for c in registry.all_checkpoints()]
    assert all(r[5] in {"missing", "present", "verified", "fixture", "corrupt"} for r in table)


def test_download_endpoint_reports_offline_failure_clearly(app_client) -> None:
    # A checkpoint whose only source is a closed loopback port: no traffic leaves the machine.
    ckpt = registry.register(
        registry.Checkpoint(
            id="test/offline",
            family="test",
            filename="offline.pth",
            description="",
            licence="MIT",
            components=(registry.Component("net", "tests.tiny_models:build_linear"),),
            sources=(registry.Source(url="http://127.0.0.1:9/offline.pth"),),
        )
    )
    try:
        with pytest.raises(Exception) as info:
            app_client.predict(ckpt.id, api_name="/download_weights")
    finally:
        registry.unregister(ckpt.id)
    text = str(info.value)
    assert "offline.pth" in text and "http://127.0.0.1:9/offline.pth" in text


def test_registry_lists_checkpoints_of_every_family() -> None:
    families = {c.family for c in registry.all_checkpoints()}
    assert {"bopbtl", "deoldify", "tpsmm", "edn"} <= families


def test_unknown_checkpoint_is_a_clear_error(app_client) -> None:
    with pytest.raises(Exception, match="unknown checkpoint"):
        app_client.predict("nope/nothing", api_name="/download_weights")


def test_every_event_has_an_explicit_api_name() -> None:
    import app as app_module

    demo = app_module.build_app()
    for dep in demo.config["dependencies"]:
        # api_name is a string (public) or the event is explicitly hidden (api_visibility private/undocumented).
        assert (
            dep.get("api_name")
            or dep.get("api_visibility") in ("private", "undocumented")
            or dep.get("show_api") is False
        ), dep


def test_help_documents_flags_and_env_vars() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0
    for flag, env in [
        ("--host", "NOSTALGIA_HOST"),
        ("--port", "NOSTALGIA_PORT"),
        ("--share", "NOSTALGIA_SHARE"),
        ("--queue-size", "NOSTALGIA_QUEUE_SIZE"),
    ]:
        assert flag in out.stdout and env in out.stdout


def test_weights_cli_list_and_unknown_id() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "weights", "list"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0
    for c in registry.all_checkpoints():
        assert c.id in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "weights", "download", "nope/x"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert bad.returncode == 2 and "unknown checkpoint" in bad.stderr
