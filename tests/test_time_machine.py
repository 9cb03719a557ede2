"""Time Machine: photo preparation, LoRA training on the tiny model, generation, ownership, deletion.

Everything runs on the tiny random Stable Diffusion written by ``python -m weights fixture`` (same
layout and classes as the published model), so the whole flow takes seconds per step here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.common.errors import InputError
from pipelines.time_machine import pipeline as tm
from pipelines.time_machine import training
from pipelines.time_machine.config import PRESETS, train_config
from pipelines.time_machine.eras import all_eras
from tests.face_photos import make_face_photos
from weights import registry, store

TINY = dict(max_steps=8, rank=4, learning_rate=1e-2, checkpoint_every=4, preview_every=100, batch_size=2)


@pytest.fixture(scope="module")
def tm_env(tmp_path_factory: pytest.TempPathFactory, reference_dir: Path):
    """A weights cache with the tiny base model, a data folder, and ten face photos."""
    root = tmp_path_factory.mktemp("tm")
    mp = pytest.MonkeyPatch()
    mp.setenv("NOSTALGIA_WEIGHTS_DIR", str(root / "weights"))
    mp.setenv("NOSTALGIA_DATA_DIR", str(root / "data"))
    mp.setenv("NOSTALGIA_TM_STEPS", "3")
    store.write_fixture(registry.get("time_machine/sd15"))
    photos = make_face_photos(reference_dir, root / "photos", 10)
    yield root, photos
    mp.undo()


@pytest.fixture()
def public(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOSTALGIA_PUBLIC", "1")


def _copy_person(person_id: str, owner: str) -> str:
    """A second person with the same prepared photos (photo checks are covered once)."""
    from pipelines.common import jobs

    src = tm.persons_dir() / person_id
    new_id = jobs.new_job_id("copy")
    shutil.copytree(src, tm.persons_dir() / new_id, ignore=shutil.ignore_patterns("job", "lora", "portraits"))
    jobs.claim(tm.persons_dir() / new_id, owner)
    return new_id


@pytest.fixture(scope="module")
def alice_person(tm_env) -> str:
    """One person prepared from the ten photos plus three that must be refused."""
    root, photos = tm_env
    from pipelines.common.media import load_image, save_png

    extra = root / "extra"
    extra.mkdir()
    first = load_image(photos[0])
    duplicate = save_png(first[::2, ::2].copy(), extra / "resized-copy.png")
    noise = save_png(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8), extra / "noise.png")
    return tm.create_person([*photos, duplicate, noise], name="Ada", consent=True, owner="alice")


def test_eras_are_data_with_prompt_and_negative():
    eras = all_eras()
    assert len(eras) >= 12
    for era in eras.values():
        assert "{subject}" in era.prompt and era.negative
        assert "sks person" in era.prompt_for("sks person")


def test_person_photos_checked_aligned_deduplicated(alice_person, tm_env):
    status = tm.person_status(alice_person, "alice")
    rejected = dict((name, reason) for name, reason in status["rejected"])
    assert status["n_photos"] == 10
    assert "the same photo as photo00.png" in rejected["resized-copy.png"]
    assert "no face" in rejected["noise.png"]
    crops = sorted((tm.persons_dir() / alice_person / "data").glob("*.png"))
    assert len(crops) == 10
    from pipelines.common import faces
    from pipelines.common.media import load_image

    crop = load_image(crops[0])
    assert crop.shape == (512, 512, 3)
    marks = faces.face_landmarks(crop)
    assert len(marks) == 1  # the aligned crop still shows the face, eyes level
    left, right = marks[0][36:42].mean(0), marks[0][42:48].mean(0)
    assert abs(left[1] - right[1]) < 0.06 * (right[0] - left[0])


def test_person_needs_consent_name_and_enough_photos(tm_env):
    _, photos = tm_env
    with pytest.raises(InputError, match="permission"):
        tm.create_person(photos, name="Ada", consent=False)
    with pytest.raises(InputError, match="name"):
        tm.create_person(photos, name="  ", consent=True)
    with pytest.raises(InputError, match="at least 10"):
        tm.create_person(photos[:4], name="Ada", consent=True)


def test_cpu_offers_only_the_test_preset(alice_person):
    assert tm.allowed_presets("cpu") == ("test",)
    assert set(tm.allowed_presets("cuda")) == set(PRESETS)
    with pytest.raises(InputError, match="needs a GPU"):
        tm.train_person(alice_person, preset="standard", owner="alice", device="cpu")


def test_lora_training_lowers_the_loss_then_keeps_only_the_lora(alice_person, tm_env):
    person = _copy_person(alice_person, "alice")
    tm.train_person(person, preset="test", owner="alice", background=False, device="cpu", **TINY)
    status = tm.person_status(person, "alice")
    assert status["state"] == "done", status
    history = status["eval_loss"]
    assert history[0][0] == 0 and history[-1][0] == TINY["max_steps"]
    losses = [loss for _, loss in history]  # fixed noise and timesteps: deterministic, comparable
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.97 * losses[0], history
    folder = tm.persons_dir() / person
    lora = folder / "lora" / training.LORA_FILE
    assert lora.exists() and lora.stat().st_size < 1_000_000
    assert not (folder / "data").exists()  # the photos are deleted after training
    assert not (folder / "job" / "state.pt").exists() and not (folder / "job" / "adapters.safetensors").exists()
    with pytest.raises(InputError, match="fully trained"):
        tm.train_person(person, owner="alice", background=False, device="cpu", **TINY)

    portraits = tm.generate(person, ["victorian", "viking"], n=2, seed=5, owner="alice")
    assert [p.era for p in portraits] == ["victorian"] * 2 + ["viking"] * 2
    from pipelines.common.media import load_image

    images = [load_image(p.path) for p in portraits]
    assert all(im.shape == (32, 32, 3) for im in images)
    again = tm.generate(person, ["victorian"], n=1, seed=5, owner="alice")
    assert np.array_equal(load_image(again[0].path), images[0])  # the seed reproduces a portrait


def test_lora_changes_the_portrait(alice_person, tm_env):
    """Generation really goes through the person's LoRA: a LoRA scaled to zero gives another image."""
    from safetensors.torch import load_file, save_file

    person = _copy_person(alice_person, "alice")
    tm.train_person(person, owner="alice", background=False, device="cpu", **{**TINY, "max_steps": 2})
    folder = tm.persons_dir() / person
    trained = tm.generate(person, ["roman"], n=1, seed=1, owner="alice")[0].path
    from pipelines.common.media import load_image

    trained_image = load_image(trained)
    lora = folder / "lora" / training.LORA_FILE
    weights = load_file(str(lora))
    save_file({k: v * 0 for k, v in weights.items()}, str(lora))
    blank = load_image(tm.generate(person, ["roman"], n=1, seed=1, owner="alice")[0].path)
    assert np.abs(trained_image.astype(int) - blank.astype(int)).max() > 0


def test_stop_and_resume_from_the_checkpoint(alice_person, tm_env, monkeypatch: pytest.MonkeyPatch):
    person = _copy_person(alice_person, "alice")
    folder = tm.persons_dir() / person
    original = training.LoraTrainer.train_step

    def stop_after_five(self):
        loss = original(self)
        if self.step == 5:
            (self.job_dir / "stop").touch()
        return loss

    monkeypatch.setattr(training.LoraTrainer, "train_step", stop_after_five)
    tm.train_person(person, owner="alice", background=False, device="cpu", **TINY)
    status = tm.person_status(person, "alice")
    assert status["state"] == "stopped" and status["step"] == 5
    assert status["trained"]  # the stopped job's checkpoint LoRA can already generate
    assert (folder / "data").exists()  # photos kept for resuming
    monkeypatch.setattr(training.LoraTrainer, "train_step", original)
    tm.train_person(person, owner="alice", background=False, device="cpu", **TINY)
    status = tm.person_status(person, "alice")
    assert status["state"] == "done" and status["step"] == TINY["max_steps"]
    assert "Resumed from step 5." in status["messages"]


def test_stop_in_every_state(alice_person, tm_env):
    person = _copy_person(alice_person, "alice")
    assert "Nothing to stop" in tm.stop_person(person, "alice")
    folder = tm.persons_dir() / person
    (folder / "job").mkdir(exist_ok=True)
    training.write_json(folder / "job" / "status.json", {"state": "queued", "updated": 0})
    assert "Stopped" in tm.stop_person(person, "alice")
    assert tm.person_status(person, "alice")["state"] == "stopped"
    assert training.run_job(folder) is None  # a job that starts after its stop ends at once


def test_two_visitors_cannot_see_each_others_persons(alice_person, tm_env, public):
    assert alice_person in [p.id for p in tm.list_persons("alice")]
    assert tm.list_persons("bob") == []
    unknown = "Unknown person"
    for action in (
        lambda: tm.person_status(alice_person, "bob"),
        lambda: tm.stop_person(alice_person, "bob"),
        lambda: tm.train_person(alice_person, owner="bob", device="cpu", **TINY),
        lambda: tm.generate(alice_person, ["roman"], owner="bob"),
        lambda: tm.delete_person(alice_person, "bob"),
    ):
        with pytest.raises(InputError, match=unknown):
            action()
    with pytest.raises(InputError, match=unknown):
        tm.person_status("not-a-person-000000000000000000000000", "bob")  # same answer as for a foreign one
    assert (tm.persons_dir() / alice_person / "person.json").exists()


def test_a_visitor_keeps_at_most_the_person_quota(alice_person, tm_env, public, monkeypatch: pytest.MonkeyPatch):
    from pipelines.common.jobs import QuotaError

    _, photos = tm_env
    monkeypatch.setenv("NOSTALGIA_TM_MAX_PERSONS", "1")
    _copy_person(alice_person, "erin")
    with pytest.raises(QuotaError, match="delete one first"):
        tm.create_person(photos, name="Eve", consent=True, owner="erin")


def test_delete_removes_every_file_of_the_person(alice_person, tm_env):
    root, _ = tm_env
    person = _copy_person(alice_person, "carol")
    tm.train_person(person, owner="carol", background=False, device="cpu", **{**TINY, "max_steps": 2})
    tm.generate(person, ["pirate"], n=1, owner="carol")
    before = {p for p in root.rglob("*") if person in str(p)}
    assert before
    tm.delete_person(person, "carol")
    assert not [p for p in root.rglob("*") if person in str(p)]
    with pytest.raises(InputError, match="Unknown person"):
        tm.person_status(person, "carol")


def test_ttl_removes_idle_persons(alice_person, tm_env, monkeypatch: pytest.MonkeyPatch):
    import os
    import time

    person = _copy_person(alice_person, "dave")
    folder = tm.persons_dir() / person
    old = time.time() - 100 * 3600
    from pipelines.common.disk import read_json, write_json

    meta = read_json(folder / "owner.json")
    write_json(folder / "owner.json", {**meta, "used": old})
    for p in [folder, *folder.rglob("*")]:
        os.utime(p, (old, old))
    monkeypatch.setenv("NOSTALGIA_JOB_TTL_HOURS", "1")
    from pipelines.common import jobs

    monkeypatch.setattr(jobs.training_slots(), "policy", jobs.JobPolicy.from_env())
    assert tm.cleanup() >= 1
    assert not folder.exists()
    assert (tm.persons_dir() / alice_person).exists()  # a person in use stays


def test_registry_entry_pins_the_published_files(weights_dir):
    ckpt = registry.get("time_machine/sd15")
    source = ckpt.sources[0]
    assert len(source.revision) == 40 and int(source.revision, 16) >= 0
    assert "OpenRAIL-M" in ckpt.licence
    weights_files = [f for f in ckpt.files if f.path.endswith(".safetensors")]
    assert len(weights_files) == 3 and all(f.size for f in weights_files)
    assert ckpt.size == sum(f.size for f in weights_files)
    assert store.status(ckpt).state == "missing"
    with pytest.raises(store.WeightsMissingError, match=r"unet/diffusion_pytorch_model\.fp16\.safetensors"):
        store.model_dir(ckpt.id)
    store.write_fixture(ckpt)
    assert store.status(ckpt).state == "fixture"
    folder = store.model_dir(ckpt.id)
    for f in ckpt.files:
        assert (folder / f.local_path).exists(), f.local_path


def test_offline_download_names_every_url(weights_dir, monkeypatch: pytest.MonkeyPatch):
    import urllib.error

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(store, "_fetch_url", offline)
    ckpt = registry.get("time_machine/sd15")
    with pytest.raises(store.WeightsMissingError) as info:
        store.download(ckpt)
    text = str(info.value)
    assert ckpt.sources[0].revision in text and "network unreachable" in text
    assert store.status(ckpt).state == "missing"


def test_train_config_presets_validate():
    assert train_config("test").resolution < train_config("standard").resolution
    with pytest.raises(InputError):
        train_config("huge")


def test_cli_generates_for_a_trained_person_and_refuses_without_photos(alice_person, tm_env, tmp_path, capsys):
    from pipelines.__main__ import main

    person = _copy_person(alice_person, "alice")
    tm.train_person(person, owner="alice", background=False, device="cpu", **{**TINY, "max_steps": 1})
    assert main(["time-machine", "--person", person, "-o", str(tmp_path), "--eras", "samurai", "--n", "1"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["samurai-seed0-0.png"]
    assert main(["time-machine", "-o", str(tmp_path / "x"), "--name", "Ada", "--consent"]) == 1
    assert "at least 10" in capsys.readouterr().err
