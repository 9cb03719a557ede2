"""Batch jobs on Ray (``python -m pipelines ... --ray``): one local Ray instance with 2 CPUs for the module,
fixture weights, tiny photos. The results must equal the plain CLI's byte for byte (frame for frame for
video), reruns resume from the manifest, a corrupt file fails alone, a killed worker's items are redone.

The plain CLI runs here with one torch thread, as each 1-CPU worker does: CPU float reductions depend on
the thread count, so the plain CLI itself writes other bytes with two threads.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.__main__ import main
from pipelines.common.media import ffmpeg_exe, iter_frames, save_png, video_streams, write_video
from pipelines.scale import storage

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-scale.txt")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a hung Ray job fails its test, never blocks CI
COLORIZE = ["--model", "artistic", "--render-factor", "2"]


@pytest.fixture(scope="module")
def ray_cluster(ensure_fixtures) -> Iterator[None]:
    """One local Ray instance (2 CPUs) for the whole module; its workers inherit the fixture weights folder."""
    from pipelines.restoration.pipeline import RestorationPipeline

    ensure_fixtures(["deoldify/artistic", *RestorationPipeline.checkpoints(False, False, True)])
    root = str(Path(__file__).resolve().parents[1])
    for attempt in range(3):  # Ray gives its processes 30 s to start: an overloaded machine can miss that
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     runtime_env={"env_vars": {"PYTHONPATH": root, "OMP_NUM_THREADS": "1"}})  # fmt: skip
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_cli(*argv: str) -> tuple[int, str]:
    """``python -m pipelines`` in this process; (exit status, what it wrote to stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def manifest(out: Path, command: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{command}.manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 small photos: grey and colour, three sizes (so batches mix working sizes)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(16)
    for i in range(12):
        h, w = 40 + 8 * (i % 3), 48 + 4 * (i % 2)
        base = rng.integers(20, 235, (h, w, 1 if i % 2 else 3), dtype=np.uint8)
        save_png(np.repeat(base, 3, axis=2) if i % 2 else base, folder / f"photo{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def cli_results(photos: Path, ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain CLI's restore results of the 12 photos (one thread, as a worker); colorize's are added
    by the test that needs them."""
    out = tmp_path_factory.mktemp("cli")
    with one_thread():
        assert run_cli("restore", str(photos), "-o", str(out / "restore"), "--quiet")[0] == 0
    return out


def assert_same_files(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_photos_restored_and_colorized_like_the_plain_cli_and_a_rerun_skips_them(
    photos: Path, cli_results: Path, tmp_path: Path
) -> None:
    names = sorted(p.stem for p in photos.iterdir())
    with one_thread():
        assert run_cli("colorize", str(photos), "-o", str(cli_results / "colorize"), "--quiet", *COLORIZE)[0] == 0
    for command, extra in (("restore", []), ("colorize", COLORIZE)):
        out = tmp_path / command
        code, err = run_cli(command, str(photos), "-o", str(out), "--ray", "--workers", "2", *extra)
        assert code == 0, err
        suffix = "restored" if command == "restore" else "colorized"
        assert_same_files(cli_results / command, out, [f"{n}.{suffix}.png" for n in names])
        records = manifest(out, command)
        assert sorted(Path(r["input"]).stem for r in records) == names
        assert {r["status"] for r in records} == {"done"} and all(r["error"] is None for r in records)
        assert all(r["seconds"] > 0 and Path(r["output"][0]).is_file() for r in records)
        assert not (out / storage.STAGING).exists()

    # a rerun finds every input done in the manifest: nothing is redone or rewritten
    out = tmp_path / "restore"
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    code, err = run_cli("restore", str(photos), "-o", str(out), "--ray", "--workers", "2")
    assert code == 0, err
    assert "12 of 12 input(s) done" in err and "12 skipped, done before" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == before
    assert len(manifest(out, "restore")) == 12


def test_corrupt_file_fails_alone_in_a_batch_and_is_retried_on_request(
    photos: Path, cli_results: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("photo00.png", "photo01.png", "photo02.png"):
        shutil.copyfile(photos / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)  # a JPEG header, then garbage
    (folder / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    # batches of 2: stage 1 runs once per batch, the corrupt photo fails alone
    args = ["restore", str(folder), "-o", str(out), "--ray", "--workers", "2", "--batch-size", "2"]
    code, err = run_cli(*args)
    assert code == 1, err
    summary = err.split("input(s) FAILED:")[-1]
    assert "broken.jpg" in summary and "photo0" not in summary
    assert "3 of 4 input(s) done" in err and "Skipped 1 file(s)" in err and "notes.txt" in err
    assert_same_files(cli_results / "restore", out, [f"photo0{i}.restored.png" for i in range(3)])
    failed = [r for r in manifest(out, "restore") if r["status"] == "failed"]
    assert [Path(r["input"]).name for r in failed] == ["broken.jpg"] and "not a readable image" in failed[0]["error"]

    code, err = run_cli(*args)  # without --retry-failed: reported again, not redone
    assert code == 1 and "failed before" in err and len(manifest(out, "restore")) == 4
    code, err = run_cli(*args, "--retry-failed")  # retried (and still broken); the done photos are skipped
    assert code == 1 and "3 skipped, done before" in err
    assert [Path(r["input"]).name for r in manifest(out, "restore")[4:]] == ["broken.jpg"]


def test_a_killed_workers_items_are_retried_and_completed(photos: Path, cli_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    err = io.StringIO()
    result: dict[str, int] = {}

    def job() -> None:
        from pipelines.__main__ import build_parser, run

        args = build_parser().parse_args(["restore", str(photos), "-o", str(out), "--ray", "--workers", "2"])
        result["code"] = run(args, err)

    thread = threading.Thread(target=job)
    thread.start()
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        names = [a["name"] if isinstance(a, dict) else a for a in ray.util.list_named_actors()]
        workers = sorted(n for n in names if n.startswith("nostalgia-worker"))
        log = out / "restore.manifest.jsonl"
        if len(workers) == 2 and log.exists() and log.read_text().count("\n") >= 1:
            killed = workers[0]
            ray.kill(ray.get_actor(killed), no_restart=False)  # the process dies; Ray restarts the actor
        time.sleep(0.02)
    thread.join(timeout=360)
    assert killed is not None, "the job ended before a worker could be killed"
    assert result.get("code") == 0, err.getvalue()
    assert "A worker was lost" in err.getvalue()
    records = manifest(out, "restore")
    assert len(records) == 12 and {r["status"] for r in records} == {"done"}
    assert max(r["attempts"] for r in records) == 2  # the killed worker's items were done on a second attempt
    assert_same_files(cli_results / "restore", out, [f"photo{i:02d}.restored.png" for i in range(12)])


def _clip_with_audio(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    silent = write_video(frames, path.with_name("silent.mp4"), fps)
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=5", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                    "-shortest", str(path)], check=True, timeout=60)  # fmt: skip
    return path


def test_video_split_in_three_chunks_equals_the_single_process_result(ray_cluster, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = [np.clip(rng.normal(120 + 6 * i, 40, (36, 50, 3)), 0, 255).astype(np.uint8) for i in range(12)]
    (tmp_path / "in").mkdir()
    clip = _clip_with_audio(tmp_path / "in" / "film.mp4", frames, 6.0)
    settings = ["--model", "artistic", "--render-factor", "2"]
    with one_thread():
        code, err = run_cli("colorize", str(clip), "-o", str(tmp_path / "cli"), "--quiet", *settings)
    assert code == 0, err
    out = tmp_path / "ray"
    code, err = run_cli("colorize", str(clip), "-o", str(out), "--ray", "--workers", "2", "--chunk-frames", "4",
                        *settings)  # fmt: skip
    assert code == 0, err
    single = list(iter_frames(tmp_path / "cli" / "film.colorized.mp4"))
    stitched = list(iter_frames(out / "film.colorized.mp4"))
    assert len(stitched) == len(single) == 12
    assert all(np.array_equal(a, b) for a, b in zip(single, stitched, strict=True))
    assert video_streams(out / "film.colorized.mp4") == {"video": "h264", "audio": "aac"}
    (record,) = manifest(out, "colorize")
    assert record["status"] == "done" and record["output"] == [str(out / "film.colorized.mp4")]
    assert "12 of 12" not in err and "1 of 1 input(s) done" in err
    assert sorted(p.name for p in out.iterdir()) == ["colorize.manifest.jsonl", "film.colorized.mp4"]


def test_storage_lists_publishes_and_resumes_on_an_fsspec_url() -> None:
    """The storage layer on fsspec's in-memory file system (what an s3:// or gs:// URL goes through)."""
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"memory://scale-test-{time.monotonic_ns()}"
    for name in ("b.png", "a.jpg", "notes.txt", ".hidden.png"):
        fs.pipe(f"{root}/in/{name}", b"x")
    inputs, skipped = storage.list_inputs([f"{root}/in"], {".png", ".jpg"}, recursive=False)
    assert [storage.basename(i) for i in inputs] == ["a.jpg", "b.png"] and all(i.startswith("memory://") for i in inputs)
    assert [storage.basename(s) for s in skipped] == ["notes.txt"]

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "a.restored.png"
        result.write_bytes(b"result")
        final = storage.publish(result, f"{root}/out")
    assert final == f"{root}/out/a.restored.png" and fs.cat(final) == b"result"
    assert [p for p in fs.ls(f"{root}/out", detail=False) if ".part-" in p] == []

    log = storage.Manifest(f"{root}/out", "restore")
    log.append({"input": inputs[0], "output": [final], "status": "done", "seconds": 1.0, "error": None})
    log.append({"input": inputs[1], "output": [], "status": "failed", "seconds": 0.1, "error": "bad"})
    log.close()
    records = storage.Manifest(f"{root}/out", "restore").load()
    assert records[inputs[0]]["status"] == "done" and records[inputs[1]]["error"] == "bad"


def test_urls_need_the_ray_mode(tmp_path: Path) -> None:
    code, err = run_cli("restore", "s3://bucket/scans", "-o", str(tmp_path / "o"))
    assert code == 2 and "s3://bucket/scans" in err and "--ray" in err
