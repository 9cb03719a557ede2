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


def test_every_event_has_an_explicit_api_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event listener is registered with an ``api_name`` given by the code (a name, or False
    to hide it); Gradio's default (the function's name) would make the API change on a rename."""
    import gradio.blocks as gradio_blocks

    import app as app_module

    original = gradio_blocks.BlocksConfig.set_event_trigger
    unnamed: list[str] = []

    def recording(self, targets, fn, *args, **kwargs):
        if kwargs.get("api_name") is None and not kwargs.get("is_cancel_function"):  # Gradio's own Stop events
            unnamed.append(getattr(fn, "__qualname__", repr(fn)))
        return original(self, targets, fn, *args, **kwargs)

    monkeypatch.setattr(gradio_blocks.BlocksConfig, "set_event_trigger", recording)
    demo = app_module.build_app()
    assert not unnamed, unnamed
    public = [d["api_name"] for d in demo.config["dependencies"] if d.get("api_visibility") == "public"]
    for endpoint in ("models", "download_weights", "restore", "colorize", "colorize_sweep", "colorize_video",
                     "animate", "dance_train", "dance_status", "dance_transfer", "nostalgia", "story", "time_machine_train",
                     "time_machine_status", "time_machine_stop", "time_machine_generate", "time_machine_delete"):  # fmt: skip
        assert endpoint in public, endpoint

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


def test_fixture_banner_names_the_tabs_each_tab_declares(weights_dir) -> None:
    """Each tab's CHECKPOINTS is what the banner reads: a fixture of a DeOldify file names the
    Colorize tab but not Restore or Animate."""
    import app as app_module
    from weights import store

    assert app_module.fixture_banner_html() == ""
    store.write_fixture(registry.get("deoldify/video"))
    html = app_module.fixture_banner_html()
    assert "Colorize" in html and "Restore" not in html and "Animate" not in html
    assert "Colorize" in app_module.tabs_using(["deoldify/video"])
    assert app_module.tabs_using(["edn/openpose_hand"]) == ["Dance"]  # hands in the Dance labels
