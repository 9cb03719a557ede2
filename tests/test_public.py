"""Public mode end to end: the app as a separate process (``python app.py`` with
``NOSTALGIA_PUBLIC=1``), driven by ``gradio_client`` sessions and plain HTTP as hostile visitors
would, with small budgets so each limit is reached in seconds. See docs/SECURITY.md."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pipelines.common.disk import PARTIAL_PREFIX, tree_bytes
from pipelines.common.media import ffmpeg_exe

pytestmark = pytest.mark.slow  # starts the app as a process, twice

ROOT = Path(__file__).resolve().parents[1]
UPLOAD_BUDGET_MB = 2.0


class PublicApp:
    """``python app.py`` in public mode on a free loopback port, with private folders."""

    def __init__(self, root: Path, weights: Path) -> None:
        self.root = root
        self.outputs, self.uploads, self.data = root / "outputs", root / "gradio", root / "data"
        self.env = {
            **os.environ,
            "NOSTALGIA_PUBLIC": "1",
            "NOSTALGIA_OUTPUT_DIR": str(self.outputs),
            "GRADIO_TEMP_DIR": str(self.uploads),
            "NOSTALGIA_DATA_DIR": str(self.data),
            "NOSTALGIA_WEIGHTS_DIR": str(weights),
            "NOSTALGIA_UPLOAD_BUDGET_MB": f"{UPLOAD_BUDGET_MB:g}",
            "NOSTALGIA_MAX_TRAINING_PROCESSES": "1",
            "NOSTALGIA_MAX_QUEUED_PER_SESSION": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
        }
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.app_files: set[str] = set()

    def visitor_uploads(self) -> int:
        return sum(tree_bytes(p) for p in self.uploads.iterdir() if p.name not in self.app_files)

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = open(self.root / "app.log", "a")  # noqa: SIM115 - kept open for the child's life
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--queue-size", "32"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited: {(self.root / 'app.log').read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "config", timeout=5).status_code == 200:
                    self.app_files = {p.name for p in self.uploads.iterdir()}  # its examples
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("the app did not answer within 180 s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=60)

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def public_app(tmp_path_factory: pytest.TempPathFactory, session_weights_dir: Path) -> Iterator[PublicApp]:
    app = PublicApp(tmp_path_factory.mktemp("public"), session_weights_dir)
    app.start()
    yield app
    app.kill(signal.SIGTERM)


def _error_of(call) -> str:
    try:
        call()
    except Exception as exc:  # gradio_client raises AppError with the page's message
        return str(exc)
    raise AssertionError("the request was accepted")


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True, timeout=120)


def _video(path: Path, fps: int, seconds: float, size: int = 64) -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}x{size}:rate={fps}", "-t", f"{seconds:g}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def _written(app: PublicApp) -> int:
    return sum(tree_bytes(p) for p in (app.outputs, app.uploads, app.data) if p.exists())


def _result_folders(app: PublicApp) -> list[Path]:
    return [p for p in app.outputs.iterdir() if len(p.name) == 32] if app.outputs.exists() else []


def test_downloads_are_refused_and_paths_hidden(public_app: PublicApp) -> None:
    message = _error_of(lambda: public_app.client().predict("deoldify/artistic", api_name="/download_weights"))
    assert "Downloads are turned off" in message and "python -m weights download" in message
    assert str(ROOT) not in message and "/tmp" not in message
    page = httpx.get(public_app.url + "config", timeout=30).text
    assert public_app.env["NOSTALGIA_WEIGHTS_DIR"] not in page  # the Models tab does not show the cache folder
    assert str(public_app.data) not in page and str(public_app.outputs) not in page


def test_frame_bombs_are_refused_before_any_work(public_app: PublicApp, tmp_path: Path) -> None:
    """The issue's 500 fps clip (64x64, 59 s: 29,500 frames in 1 MB), a 1000 fps file and a
    clip of more frames than the limit at a plain frame rate, on the two video endpoints."""
    from gradio_client import handle_file

    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photo)
    cases = {
        "fast.mp4": (_video(tmp_path / "fast.mp4", 500, 59), r"500 frames per second is above the limit of \d+ fps"),
        "k.mp4": (_video(tmp_path / "k.mp4", 1000, 2), r"1000 frames per second is above the limit"),
        "many.mp4": (_video(tmp_path / "many.mp4", 100, 40, 16), r"4000 frames \(frame rate x duration\) exceed the limit"),
    }  # fmt: skip
    client = public_app.client()
    before_bytes, before_folders = _written(public_app), len(_result_folders(public_app))
    for name, (path, expected) in cases.items():
        colorize = _error_of(lambda p=path: client.predict(handle_file(str(p)), "artistic", 7, True, 0.0,
                                                           api_name="/colorize_video"))  # fmt: skip
        assert re.search(expected, colorize), (name, colorize)
        animate = _error_of(lambda p=path: client.predict(handle_file(str(photo)), handle_file(str(p)), "vox",
                                                          "relative", False, 1, False, api_name="/animate"))  # fmt: skip
        assert re.search(expected, animate), (name, animate)
    assert _written(public_app) - before_bytes < 50e6
    assert len(_result_folders(public_app)) == before_folders  # no result was started


def test_three_hour_recording_is_refused_before_conversion(public_app: PublicApp, tmp_path: Path) -> None:
    from gradio_client import handle_file

    recording = tmp_path / "silence.flac"
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "10800", "-c:a", "flac", str(recording))
    assert recording.stat().st_size < 5e6
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((48, 48, 3), 90, np.uint8)).save(photo)
    before_bytes, before_folders = _written(public_app), len(_result_folders(public_app))
    message = _error_of(lambda: public_app.client().predict(
        handle_file(str(photo)), "", handle_file(str(recording)), "auto", False, "no", "no", False, True, 7, 0.2,
        api_name="/story"))  # fmt: skip
    assert re.search(r"the recording lasts 3 h 00 min; recordings are limited to \d+ s", message), message
    assert _written(public_app) - before_bytes < 50e6
    assert len(_result_folders(public_app)) == before_folders


def test_upload_cache_stays_within_its_budget(public_app: PublicApp) -> None:
    """A flood of uploads (they bypass the queue) never holds more than the budget for long; the
    app's own example files are not the visitors' and are kept."""
    budget = UPLOAD_BUDGET_MB * 1e6
    one = 300_000
    peak = 0
    with httpx.Client(timeout=60) as http:
        for i in range(25):  # 7.5 MB in all, 3.75 times the budget
            payload = np.random.default_rng(i).integers(0, 255, one, dtype=np.uint8).tobytes()
            response = http.post(public_app.url + "gradio_api/upload", files={"files": (f"f{i}.bin", payload)})
            assert response.status_code == 200
            peak = max(peak, public_app.visitor_uploads())
    time.sleep(1.0)
    assert public_app.visitor_uploads() <= budget
    assert peak <= budget + 2 * one  # at most the uploads still being pruned
    assert all((public_app.uploads / name).exists() for name in public_app.app_files)


def _training_processes(app: PublicApp) -> int:
    """Dance training processes of this app (by command line), alive and not zombies."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = stat.read_bytes().split(b"\0")
            state = (stat.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"pipelines.dance.jobs" in cmd and any(str(app.data).encode() in c for c in cmd) and state != "Z":
            count += 1
    return count


def _train(client, name: str, *, target: str | None = None, restart: bool = False) -> tuple:
    return client.predict(None, target is None, name, "tiny", 1, target is not None, target, restart,
                          api_name="/dance_train")  # fmt: skip


def test_dance_targets_belong_to_their_session(public_app: PublicApp) -> None:
    """B cannot see, stop, restart, continue or transfer A's target, nor touch the sample; one
    session's flood of trainings runs at most the cap and queues at most its share."""
    alice, bob = public_app.client(), public_app.client()
    target_a, summary, _preview, listed = _train(alice, "Alice")
    assert target_a.startswith("alice-") and len(target_a.rsplit("-", 1)[1]) == 24
    assert target_a in str(listed) and re.search(r"starting|preparing|training", summary), summary
    folder = public_app.data / "dance_targets" / target_a
    try:
        for call in (
            lambda: bob.predict(target_a, api_name="/dance_status"),
            lambda: bob.predict(target_a, api_name="/dance_stop"),
            lambda: _train(bob, "", target=target_a, restart=True),
            lambda: _train(bob, "", target=target_a),
            lambda: bob.predict(target_a, None, True, True, True, api_name="/dance_transfer"),
            lambda: _train(bob, "", target=".sample", restart=True),
            lambda: _train(bob, "", target="sample", restart=True),
        ):
            assert "Unknown dance target" in _error_of(call)
        assert not (folder / "job" / "stop").exists()  # Bob's stop never reached it
        page = httpx.get(public_app.url + "config", timeout=30).text
        assert target_a not in page and "Alice" not in page  # the page config lists no targets
        # Bob's own training: the sample copied into his target; it waits, the machine runs one
        target_b, summary_b, _p, listed_b = _train(bob, "Bob")
        assert target_b != target_a and target_a not in str(listed_b) and "queued (1 in line" in summary_b
        # Alice floods: one more may wait, the rest are refused; never more than one process runs
        assert "queued" in _train(alice, "Alice 2")[1]
        flood = [_error_of(lambda i=i: _train(alice, f"Alice {i}")) for i in range(3, 7)]
        assert all("waiting to start, the most one visitor may queue" in m for m in flood), flood
        peak = 0
        for _ in range(20):
            peak = max(peak, _training_processes(public_app))
            time.sleep(0.1)
        assert peak <= 1
        # Stop answers in every state: queued (removed), running (stops after a checkpoint)
        assert "removed from the queue" in bob.predict(target_b, api_name="/dance_stop")
        assert "stopped" in bob.predict(target_b, api_name="/dance_status")[0]
        assert "Stop requested" in alice.predict(target_a, api_name="/dance_stop")
        assert (public_app.data / "dance_targets" / ".sample" / "frames.npz").exists()  # the sample, untouched
    finally:  # leave no training behind for the next tests: stop Alice's (Bob's was dequeued)
        deadline = time.time() + 120
        while _training_processes(public_app) and time.time() < deadline:
            for target in (p.name for p in (public_app.data / "dance_targets").glob("alice*")):
                with contextlib.suppress(Exception):
                    alice.predict(target, api_name="/dance_stop")
            time.sleep(2)


def test_kill_9_during_a_video_job_leaves_nothing_partial(public_app: PublicApp, ensure_fixtures, tmp_path: Path) -> None:
    from gradio_client import handle_file

    ensure_fixtures(["deoldify/video"])
    clip = _video(tmp_path / "clip.mp4", 24, 6, 96)
    job = public_app.client().submit(handle_file(str(clip)), "video", 7, True, 0.0, api_name="/colorize_video")
    deadline = time.time() + 300
    partials: list[Path] = []
    while time.time() < deadline and not partials:
        partials = list(public_app.outputs.rglob(f"{PARTIAL_PREFIX}*"))
        time.sleep(0.1)
    assert partials, "the video job never started writing"
    public_app.kill(signal.SIGKILL)
    assert any(p.exists() for p in partials)  # the kill left a half-written video behind
    del job
    public_app.start()
    assert not list(public_app.outputs.rglob(f"{PARTIAL_PREFIX}*"))
    assert not [p for p in _result_folders(public_app) if not any(p.iterdir())]  # no empty result folder either
