"""The narration voice as a registry checkpoint: listed with its pinned files, never replaced by a
fixture (Story then speaks with espeak-ng, and the CLI says so), and found by Story where the
registry puts it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from weights import registry, store
from weights.__main__ import main as weights_cli

VOICE = "voices/en_US-lessac-medium"


def test_the_voice_is_registered_with_pinned_files() -> None:
    ckpt = registry.get(VOICE)
    assert ckpt.is_folder and ckpt.sources[0].revision == "v1.0.0" and ckpt.no_fixture
    onnx, config = (next(f for f in ckpt.files if f.local_path == name) for name in (ckpt.filename, ckpt.filename + ".json"))
    assert onnx.size == 63_201_294 and config.size == 4_885 and onnx.sha256 and config.sha256
    assert ckpt.sources[0].file_url(onnx.path).startswith("https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/lessac/")
    assert registry.published_size(ckpt) == onnx.size + config.size


def test_list_and_fixture_say_the_voice_has_no_fixture(weights_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert weights_cli(["list"]) == 0
    listing = capsys.readouterr().out
    assert f"{VOICE}" in listing and "missing (no fixture)" in listing and "espeak-ng" in listing
    assert weights_cli(["fixture", VOICE]) == 0
    assert "skipped" in capsys.readouterr().out and "espeak-ng" in registry.get(VOICE).no_fixture
    assert not store.checkpoint_dir(registry.get(VOICE)).exists()
    with pytest.raises(store.WeightsError, match="no fixture"):
        store.write_fixture(registry.get(VOICE))
    instructions = store.manual_instructions(registry.get(VOICE))
    assert "No fixture exists" in instructions and "weights fixture" not in instructions


def test_story_narrates_with_the_registered_voice_once_it_is_in_place(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.nostalgia import story

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "piper" else real_find_spec(name, *a))
    assert story.neural_voice() is None  # nothing downloaded yet: espeak-ng speaks
    small = registry.register(
        registry.Checkpoint(
            id="voices/test-tiny",
            family="voices",
            filename="test-tiny.onnx",
            description="",
            licence="test",
            components=(),
            sources=(registry.Source(hf_repo="example/voices", revision="0" * 40),),
            files=(registry.RepoFile("test-tiny.onnx.json", size=2), registry.RepoFile("test-tiny.onnx", size=4)),
            no_fixture="test voice",
        )
    )
    try:
        folder = store.checkpoint_dir(small)
        folder.mkdir(parents=True)
        (folder / "test-tiny.onnx.json").write_bytes(b"{}")
        assert story.neural_voice() is None  # half a voice is no voice
        (folder / "test-tiny.onnx").write_bytes(b"onnx")
        assert story.neural_voice() == folder / "test-tiny.onnx"
    finally:
        registry.unregister(small.id)
