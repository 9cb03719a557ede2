"""Dance training and transfer, end to end on a small target (CPU, tiny generator, 128x64).

The central acceptance test trains a few hundred steps on the sample target and asserts that the
held-out L1 error falls, then transfers a motion and checks the video's length and fps. The
other tests cover the on-disk job (resume after interruption, the time budget, the status of a
job whose process died), audio, and the tab's endpoints with a real background process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipelines.common.disk import write_json
from pipelines.common.errors import InputError
from pipelines.common.media import probe_video
from pipelines.dance import pipeline
from pipelines.dance import target as target_module
from pipelines.dance.config import TrainConfig
from pipelines.dance.jobs import job_config, launch, read_status, run_job
from pipelines.dance.target import prepare_target_from_arrays, split_holdout, target_training_data
from pipelines.dance.trainer import Trainer
from pipelines.dance.transfer import DanceTransferPipeline

pytestmark = pytest.mark.slow  # trains and transfers for real (tiny networks, hundreds of steps)

TINY = dict(width=128, height=64, ngf=8, n_downsampling=3, n_blocks=2, ndf=8, num_D=2, face_ngf=8,
            face_n_downsampling=2, face_n_blocks=1, threads=None, time_budget_min=10.0, lr=1e-3)  # fmt: skip


@pytest.fixture()
def one_thread():
    """Training under a shared, loaded CPU is much faster on one thread than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOSTALGIA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NOSTALGIA_OUTPUT_DIR", str(tmp_path / "out"))
    return tmp_path / "data"


@pytest.fixture(scope="module")
def sample_target() -> tuple[list[np.ndarray], list, float]:
    return pipeline.sample_target_arrays()


def _tiny_target(data_dir: Path, sample_target, n: int = 24) -> Path:
    frames, poses, fps = sample_target
    path = data_dir / "dance_targets" / "tiny"
    prepare_target_from_arrays(path, frames[:n], poses[:n], name="tiny", fps=fps, source="test")
    return path


def test_training_lowers_heldout_l1_and_transfer_keeps_length_and_fps(data_dir, one_thread) -> None:
    target = pipeline.create_target(sample=True)
    pipeline.train_target(target_id=target, preset="tiny", background=False,
                          **{**TINY, "max_steps": 240, "eval_every": 60, "preview_every": 120, "checkpoint_every": 120})  # fmt: skip
    status = pipeline.training_status(target)
    assert status["state"] == "done" and status["step"] == 240, status["summary"]
    history = status["heldout_l1"]
    first, last = history[0][1], history[-1][1]
    assert [h[0] for h in history] == [0, 60, 120, 180, 240]
    assert last < 0.5 * first, f"held-out L1 did not fall enough: {history}"
    # Inside the dancer's silhouette the exported generator must beat the best constant guess
    # (the mean training frame): it has learned appearance from pose, not just the background.
    target_dir = data_dir / "dance_targets" / target
    data = target_training_data(target_dir, job_config(target_dir))
    _, held = split_holdout(len(data), 0.1, 2)
    gen = DanceTransferPipeline.from_dir(target_dir).generate(list(data.labels[held]), [tuple(b) for b in data.boxes[held]])
    train_images = data.images[: held[0]].astype(np.float64)
    mean_frame, background = train_images.mean(0), np.median(train_images, 0)
    for k, i in enumerate(held):
        real = data.images[i].astype(np.float64)
        body = cv2.dilate((np.abs(real - background).max(-1) > 40).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert body.mean() > 0.02
        err_gen = np.abs(gen[k].astype(np.float64) - real)[body].mean()
        err_mean = np.abs(mean_frame - real)[body].mean()
        assert err_gen < 0.9 * err_mean, f"frame {i}: generator {err_gen:.1f} vs mean frame {err_mean:.1f} (0..255)"
    assert status["preview"] and Path(status["preview"]).exists()
    assert "VGG19" in " ".join(status["messages"])
    model_dir = data_dir / "dance_targets" / target / "model"
    spec = json.loads((model_dir / "generator.json").read_text())
    assert spec["width"] == 128 and (model_dir / "net_G.safetensors").exists()
    assert spec["face_generator"] is not None and (model_dir / "net_Gface.safetensors").exists()
    info = pipeline.list_targets()[0]
    assert info.id == target and info.trained and info.heldout_l1 == pytest.approx(last)

    frames, _, fps = pipeline.sample_motion_arrays()
    result = pipeline.transfer(target, sample_motion=True, side_by_side=True)
    probe = probe_video(result.path)
    assert probe.n_frames == len(frames) == result.n_frames
    assert probe.fps == pytest.approx(fps, rel=1e-3)
    assert (probe.width, probe.height) == (3 * 128, 64)


def _source_with_audio(folder: Path, frames: list[np.ndarray], fps: float) -> Path:
    import wave

    from pipelines.common import media

    silent = media.write_video(frames, folder / "silent.mp4", fps)
    tone, rate = folder / "tone.wav", 16000
    with wave.open(str(tone), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(np.arange(2 * rate) * 0.17) * 8000).astype("<i2").tobytes())
    return media.mux_audio(silent, tone, folder / "source.mp4")


@pytest.fixture(scope="module")
def uploaded_transfer(tmp_path_factory: pytest.TempPathFactory, sample_target):
    """A tiny trained target and the transfer of a 9-frame video with audio. Poses come from the
    estimator in the app; here they are the sample's exact poses (no OpenPose weights in tests)."""
    from pipelines.dance.sample import make_sample_target

    folder = tmp_path_factory.mktemp("dance-upload")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOSTALGIA_DATA_DIR", str(folder / "data"))
        mp.setenv("NOSTALGIA_OUTPUT_DIR", str(folder / "out"))
        torch.set_num_threads(1)
        path = _tiny_target(folder / "data", sample_target)
        config = TrainConfig(**{**TINY, "max_steps": 2, "face_fraction": 0.5, "eval_every": 2, "preview_every": 2, "checkpoint_every": 2})
        Trainer(path, config, target_training_data(path, config)).run()
        frames, _, _ = sample_target
        source = _source_with_audio(folder, frames[:9], 12.5)
        done: list[int] = []

        def fake_detect(chunk, progress=None, hands=None):  # the sample's poses, in frame pixels, chunk by chunk
            start = sum(done)
            done.append(len(chunk))
            return raw_poses[start : start + len(chunk)]

        raw_poses = make_sample_target(seconds=1.0, fps=9)[1]
        mp.setattr(target_module, "detect_poses", fake_detect)
        result = pipeline.transfer("tiny", source)
        torch.set_num_threads(threads)
    return source, result


def test_transfer_of_an_uploaded_video_keeps_its_audio_and_fps(uploaded_transfer) -> None:
    from pipelines.common import media

    _, result = uploaded_transfer
    assert media.video_streams(result.path) == {"video": "h264", "audio": "aac"}
    probe = probe_video(result.path)
    assert probe.fps == pytest.approx(12.5) and (probe.width, probe.height) == (128, 64)
    assert result.n_frames == 9
    # the sample's labels draw hands; without a GPU the source's hands are not searched, and it says so
    assert any("no GPU" in note and "hands" in note for note in result.notes), result.notes


def test_transfer_with_audio_keeps_every_frame(uploaded_transfer) -> None:
    source, result = uploaded_transfer
    assert probe_video(result.path).n_frames == probe_video(source).n_frames == 9


def test_resume_continues_from_the_checkpoint(data_dir, one_thread, sample_target) -> None:
    path = _tiny_target(data_dir, sample_target)
    base = {**TINY, "face": False, "eval_every": 100, "preview_every": 100, "checkpoint_every": 2}
    config = TrainConfig(**{**base, "max_steps": 4})
    data = target_training_data(path, config)
    first = Trainer(path, config, data)
    first.run()
    weights = {k: v.clone() for k, v in first.netG.state_dict().items()}
    # a new process (here: a new Trainer) resumes at step 4 with the same weights and optimiser
    second = Trainer(path, TrainConfig(**{**base, "max_steps": 6}), data)
    assert second.step == 4
    assert all(torch.equal(second.netG.state_dict()[k], v) for k, v in weights.items())
    assert second.optG.state_dict()["state"], "optimiser state was not restored"
    status = second.run()
    assert status.step == 6 and any("Resumed from step 4" in m for m in status.messages)
    # another network size cannot resume from it
    with pytest.raises(InputError, match="ngf"):
        Trainer(path, TrainConfig(**{**base, "ngf": 16, "max_steps": 8}), data)
    write_json(path / "job" / "config.json", dataclasses.asdict(config))
    with pytest.raises(InputError, match="ngf"):  # refused at once, before any process starts
        launch(path, TrainConfig(**{**base, "ngf": 16, "max_steps": 8}))


def test_time_budget_stops_training(data_dir, one_thread, sample_target) -> None:
    path = _tiny_target(data_dir, sample_target)
    config = TrainConfig(**{**TINY, "max_steps": 10_000, "time_budget_min": 0.5 / 60, "face": False})
    status = Trainer(path, config, target_training_data(path, config)).run()
    assert status.state == "done" and 1 <= status.step < 10_000
    assert status.elapsed_s >= 0.5


def test_a_dead_job_is_reported_interrupted(data_dir, sample_target) -> None:
    path = _tiny_target(data_dir, sample_target, n=8)
    (path / "job").mkdir()
    write_json(path / "job" / "status.json", {"state": "training", "pid": 2**22 + 12345, "updated": time.time() - 60})
    status = read_status(path)
    assert status["state"] == "interrupted" and not status["running"]


def test_bad_settings_are_input_errors(data_dir) -> None:
    with pytest.raises(InputError, match="multiple of"):
        pipeline.train_config("tiny", width=100)
    with pytest.raises(InputError, match="model size"):
        pipeline.train_config("huge")
    with pytest.raises(InputError, match="Unknown dance target"):
        pipeline.training_status("../etc")
    with pytest.raises(InputError, match="Upload a video"):
        pipeline.create_target(None)


def _file(value: object) -> str:
    if isinstance(value, dict):
        return _file(value.get("path") or value.get("video") or value.get("value"))
    return str(value)


def test_dance_tab_endpoints(app_client, data_dir, one_thread, monkeypatch) -> None:
    """``/dance_train`` returns at once with the job id; ``/dance_stop`` ends it early (after a
    checkpoint); ``/dance_status`` reports it; ``/dance_transfer`` renders the sample motion."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the training process: tiny nets, shared CPU
    start = time.time()
    target_id, summary, _, selected = app_client.predict(None, True, "Pat", "tiny", 1, False, None, False,
                                                         api_name="/dance_train")  # fmt: skip
    selected = selected.get("value") if isinstance(selected, dict) else selected  # the target list, updated
    assert time.time() - start < 60 and target_id == selected and target_id.startswith("pat-")  # a copy, named as typed
    assert pipeline.target_info(target_id).name == "Pat"
    assert any(state in summary for state in ("queued", "starting", "preparing", "training"))
    job = data_dir / "dance_targets" / target_id
    pid = read_status(job)["pid"]
    assert pid and pid != os.getpid()  # its own process: closing the browser does not stop it
    with pytest.raises(InputError, match="already training"):
        launch(job, job_config(job))
    deadline = time.time() + 240
    while read_status(job).get("state") != "training":  # a stop while preparing would end it untrained
        assert time.time() < deadline and read_status(job).get("state") in ("queued", "starting", "preparing"), read_status(job)
        time.sleep(0.5)
    assert "Stop requested" in app_client.predict(target_id, api_name="/dance_stop")
    while True:
        summary, preview = app_client.predict(target_id, api_name="/dance_status")
        if "stopped" in summary or "done" in summary or "failed" in summary:
            break
        assert time.time() < deadline, summary
        time.sleep(2.0)
    assert summary.startswith(f"**Pat** · `{target_id}`: stopped"), summary
    assert "nothing to stop" in app_client.predict(target_id, api_name="/dance_stop")  # Stop on a finished job says so
    assert preview and Path(_file(preview)).exists()
    assert (job / "job" / "checkpoint.pt").exists() and (job / "model" / "net_G.safetensors").exists()
    with pytest.raises(Exception, match="source video"):
        app_client.predict(target_id, None, False, False, True, api_name="/dance_transfer")
    video, download, note = app_client.predict(target_id, None, True, True, True, api_name="/dance_transfer")
    probe = probe_video(_file(video))
    n_motion = len(pipeline.sample_motion_arrays()[0])
    assert probe.n_frames == n_motion and (probe.width, probe.height) == (3 * 128, 64)
    assert f"{n_motion} frames" in note and Path(_file(download)).suffix == ".mp4"


def test_vgg_term_is_used_when_its_weights_exist(data_dir, one_thread, sample_target, monkeypatch) -> None:
    """With VGG19 weights available the perceptual term joins the generator loss and the L1
    stand-in is off (random VGG weights here: only the wiring is under test)."""
    from pipelines.dance import losses

    monkeypatch.setattr(losses, "load_vgg19", lambda device: (losses.VGGLoss(losses.VGG19Features()).to(device), "VGG19 perceptual loss ON"))
    path = _tiny_target(data_dir, sample_target, n=8)
    config = TrainConfig(**{**TINY, "width": 64, "height": 32, "face": False, "holdout_min": 2})
    trainer = Trainer(path, config, target_training_data(path, config))
    assert trainer.vgg is not None and not trainer.use_l1
    step = trainer.train_step()
    assert step["G_VGG"] > 0 and step["G_L1"] == 0
    assert [m for m in trainer.status.messages if not m.startswith("Held-out quality")] == ["VGG19 perceptual loss ON"]


def test_local_stage_starts_from_the_global_stage(data_dir, one_thread, sample_target) -> None:
    """The paper's second stage: a LocalEnhancer at twice the size whose inner global generator
    starts from the trained global stage; the transfer then runs at the local size."""
    path = _tiny_target(data_dir, sample_target, n=10)
    small = {**TINY, "width": 64, "height": 32, "ngf": 8, "face": False, "eval_every": 100, "preview_every": 100}
    Trainer(path, TrainConfig(**{**small, "max_steps": 2}), target_training_data(path, TrainConfig(**small))).run()
    global_g = torch.load(path / "job" / "checkpoint.pt", weights_only=True)["G"]
    local = TrainConfig(**{**small, "width": 128, "height": 64, "netG": "local", "ngf": 4, "num_D": 3, "max_steps": 2,
                           "niter_fix_global": 1})  # fmt: skip
    trainer = Trainer(path, local, target_training_data(path, local))
    assert trainer.step == 0 and any("initialised from the global stage" in m for m in trainer.status.messages)
    inner = trainer.netG.model.state_dict()
    assert all(torch.equal(inner[k], global_g[f"model.{k}"]) for k in inner)
    trainer.train_step()  # niter_fix_global: the inner global generator does not move yet
    assert all(torch.equal(trainer.netG.model.state_dict()[k], global_g[f"model.{k}"]) for k in inner)
    trainer.train_step()
    assert not all(torch.equal(trainer.netG.model.state_dict()[k], global_g[f"model.{k}"]) for k in inner)
    trainer.save_checkpoint()
    labels, boxes = target_training_data(path, local).labels, [None] * 3
    frames = DanceTransferPipeline.from_dir(path).generate(list(labels[:3]), boxes)
    assert frames[0].shape == (64, 128, 3)


def test_video_target_is_prepared_from_its_video(data_dir, one_thread, monkeypatch) -> None:
    """An uploaded target: poses found per chunk of frames (the estimator is replaced by the
    sample's exact poses), frames decoded again from the stored video, never kept whole."""
    from pipelines.common.media import write_video
    from pipelines.dance.sample import make_sample_target

    frames, poses = make_sample_target(seconds=1.4, fps=10)
    video = write_video(frames, data_dir.parent / "me.mp4", 10)
    seen: list[int] = []

    def fake_detect(chunk, progress=None, hands=None):
        start = sum(seen)
        seen.append(len(chunk))
        return poses[start : start + len(chunk)]

    monkeypatch.setattr(target_module, "detect_poses", fake_detect)
    target_id = pipeline.create_target(video, name="Me")
    path = data_dir / "dance_targets" / target_id
    config = pipeline.train_config("tiny", minutes=1, **{**TINY, "max_steps": 1, "face": False})
    (path / "job").mkdir()
    write_json(path / "job" / "config.json", dataclasses.asdict(config))
    status = run_job(path)
    assert status.state == "done" and seen == [14]
    assert (path / "poses.npz").exists() and not (path / "frames.npz").exists()
    data = target_training_data(path, config)
    assert data.images.shape == (14, 64, 128, 3) and data.valid.all()
    assert pipeline.target_info(target_id).name == "Me"


def test_continuing_a_target_gets_a_new_budget_and_ends_with_the_face_stage(data_dir, one_thread, sample_target) -> None:
    path = _tiny_target(data_dir, sample_target, n=10)
    base = {**TINY, "width": 64, "height": 32, "face_fraction": 0.5, "eval_every": 100, "preview_every": 100}
    config = TrainConfig(**{**base, "max_steps": 2})
    first = Trainer(path, config, target_training_data(path, config))
    assert not first.face_stage()
    first.run()
    assert first.face_trained and first.status.stage == "face"
    assert json.loads((path / "model" / "generator.json").read_text())["face_generator"] is not None
    # a second session: its own budget, the body generator trains again, then the face GAN
    second = Trainer(path, TrainConfig(**{**base, "max_steps": 6}), target_training_data(path, config))
    assert second.step == 2 and second.budget_s == pytest.approx(second.elapsed + base["time_budget_min"] * 60)
    assert second.face_trained and not second.face_stage()
    second.step = 4
    assert second.face_stage()


def test_heldout_quality_is_measured_after_each_stage(data_dir, one_thread, sample_target, tmp_path, monkeypatch) -> None:
    """SSIM (always) and LPIPS (when its weights load) of the held-out frames regenerated from their
    own poses, after the body stage and after the face stage, in the status and the messages."""
    from pipelines.common.lpips import LPIPS
    from pipelines.common.quality import ssim
    from pipelines.dance import trainer as trainer_module

    monkeypatch.setenv("NOSTALGIA_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    path = _tiny_target(data_dir, sample_target, n=10)
    config = TrainConfig(**{**TINY, "width": 64, "height": 32, "face_fraction": 0.5, "max_steps": 2,
                            "eval_every": 100, "preview_every": 100})  # fmt: skip
    trainer = Trainer(path, config, target_training_data(path, config))
    status = trainer.run()
    assert [(q["step"], q["stage"]) for q in status.quality] == [(1, "global"), (2, "face")]
    for q in status.quality:
        assert 0 < q["ssim"] <= 1 and q["lpips"] is None and q["frames"] == len(trainer.holdout_idx)
        assert q["lpips_note"].startswith("LPIPS unavailable: weights not present")
    frames = trainer.generate(trainer.holdout_idx)
    real = [trainer._to_device(np.asarray([i]))[1] for i in trainer.holdout_idx]
    expected = np.mean([float(ssim((g.clamp(-1, 1) + 1) / 2, (r + 1) / 2)) for g, r in zip(frames, real, strict=True)])
    assert status.quality[-1]["ssim"] == pytest.approx(expected, rel=1e-6)
    assert any(m.startswith("Quality after the face stage (step 2): SSIM") for m in status.messages)
    assert json.loads((path / "model" / "generator.json").read_text())["quality"]["stage"] == "face"
    summary = pipeline.training_status("tiny")["summary"]  # what the Dance tab shows
    assert f"held-out SSIM/LPIPS: global {status.quality[0]['ssim']:.3f}/n/a (step 1), face " in summary
    assert "[LPIPS unavailable: weights not present" in summary
    # with LPIPS weights the figure is there too (a random AlexNet here: the wiring, not the value)
    def random_lpips(net: str, device: torch.device) -> tuple[LPIPS, str]:
        model = LPIPS(net)
        for weight in model.lins.parameters():
            weight.data.abs_()  # LPIPS weights are non-negative
        return model, "test weights"

    monkeypatch.setattr(trainer_module, "load_lpips", random_lpips)
    more = Trainer(path, TrainConfig(**{**config.__dict__, "max_steps": 3, "face": False}), target_training_data(path, config)).run()
    assert more.quality[-1]["step"] == 3 and more.quality[-1]["lpips"] > 0 and more.quality[-1]["lpips_note"] == "test weights"


def test_learning_rate_is_constant_then_decays_linearly_in_each_phase(data_dir, sample_target) -> None:
    path = _tiny_target(data_dir, sample_target, n=10)
    config = TrainConfig(**{**TINY, "width": 64, "height": 32, "max_steps": 100, "face_fraction": 0.2, "lr": 1e-3})
    trainer = Trainer(path, config, target_training_data(path, config))
    lrs = {}
    for step in (0, 40, 60, 80, 90, 99):
        trainer.step = step
        lrs[step] = trainer.learning_rate()
    # body phase: steps 0..80 (constant to 40, then down); face phase: 80..100 (constant to 90, then down)
    assert lrs[0] == lrs[40] == lrs[80] == lrs[90] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(0.5e-3) and lrs[99] == pytest.approx(0.1e-3)
    assert TrainConfig(**{**TINY, "lr_decay": False}).lr_decay is False


def test_dance_modules_have_no_import_cycle() -> None:
    """Every import between pipelines/dance modules (module level or inside functions) points one
    way: the split of the training code must not grow a cycle back (it once had transfer <-> training)."""
    import ast
    import graphlib

    package = Path(__file__).resolve().parents[1] / "pipelines" / "dance"
    graph: dict[str, set[str]] = {}
    for file in package.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "pipelines.dance":
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipelines.dance."):
                deps.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[2] for a in node.names if a.name.startswith("pipelines.dance."))
        graph[file.stem] = deps - {file.stem}
    assert {"target", "trainer", "jobs", "transfer"} <= graph.keys()
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert "trainer" not in graph["target"] and "jobs" not in graph["trainer"]
