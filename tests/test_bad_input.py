"""Bad input through the running app (``gradio_client``, as any API user would send it).

Every odd file or value a user may send gets a specific message naming the problem, never a
stack trace, an "internal error" or a silent empty output; the odd-but-valid ones (a 1x1 image,
a 16-bit TIFF, an animated GIF) are processed exactly as their plain 8-bit equivalent. After all
of it the server still answers a normal request.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipelines.common.limits import LIMITS
from pipelines.common.media import ffmpeg_exe, load_image, write_video

pytestmark = pytest.mark.slow  # runs the pipelines end to end (the running app, fixture weights)

RESTORE_FAST = ["bopbtl/vae_a_quality", "bopbtl/mapping_quality", "bopbtl/vae_b_quality", "bopbtl/face_enhancer_256"]
FIXTURES = [*RESTORE_FAST, "deoldify/artistic", "tpsmm/vox"]

# Messages that mean the app did not recognise the problem itself.
UNSPECIFIC = ("Internal error", "Traceback", "upstream Gradio app has raised an exception", "ComponentProcessingError")


@pytest.fixture(scope="module")
def client(app_client, ensure_fixtures):
    from pipelines.common.device import MODELS

    ensure_fixtures(FIXTURES)
    MODELS.unload()  # networks load from the app's (fixture) cache, whatever ran before
    return app_client


def _file(value: Any) -> str:
    if isinstance(value, dict):
        return _file(value.get("path") or value.get("video") or value.get("value") or value.get("image"))
    return str(value)


def _rgb(value: Any) -> np.ndarray:
    return np.asarray(Image.open(_file(value)).convert("RGB"))


def _error_of(call: Callable[[], Any]) -> str:
    """The message of the error the app answers with; fails if the call succeeds."""
    with pytest.raises(Exception) as info:
        call()
    message = str(info.value)
    assert not any(bad in message for bad in UNSPECIFIC), f"unspecific error: {message}"
    return message


# --------------------------------------------------------------------------- odd files


def _photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    base = 120 + 80 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0)
    return np.clip(base[..., None] + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG that declares ``width`` x ``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path, fmt: str) -> Path:
    Image.fromarray(_photo(192, 192)).save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_IMAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    # name -> (maker, regex the message must match)
    "zero-byte": (lambda d: _write(d / "empty.jpg", b""), r"empty \(0 bytes\)"),
    "truncated JPEG": (lambda d: _truncated(d / "half.jpg", "JPEG"), r"damaged or truncated"),
    "truncated PNG": (lambda d: _truncated(d / "half.png", "PNG"), r"damaged or truncated"),
    "text renamed .jpg": (
        lambda d: _write(d / "notes.jpg", b"these are my notes, not a photo\n" * 20),
        r"not a readable image",
    ),
    "HTML renamed .png": (
        lambda d: _write(d / "page.png", b"<html><script>alert(1)</script></html>"),
        r"not a readable image",
    ),
    "bomb beyond PIL's own limit": (
        lambda d: _png_header_only(d / "bomb.png", 60_000, 60_000),
        r"decompression bomb|exceeds the limit",
    ),
    "bomb beyond the app's limit": (
        lambda d: _png_header_only(d / "big.png", 6_000, 5_000),
        r"30\.0 MP exceeds the limit",
    ),
}


def _restore(client, f, **kw) -> Any:
    return client.predict(f, False, False, kw.get("faces", True), api_name="/restore")


def _colorize(client, f, **kw) -> Any:
    return client.predict(f, "artistic", kw.get("rf", 7), True, api_name="/colorize")


def _animate(client, f, **kw) -> Any:
    from gradio_client import handle_file

    return client.predict(f, handle_file(str(kw["clip"])), "vox", "relative", False, 1, False, api_name="/animate")


IMAGE_ENDPOINTS = {"restore": _restore, "colorize": _colorize, "animate": _animate}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small frames without a face (a driving clip for the photo tests)."""
    folder = tmp_path_factory.mktemp("clip")
    frames = [np.roll(_photo(48, 48, 1), 3 * i, axis=1) for i in range(3)]
    return write_video(frames, folder / "clip.mp4", 6)


@pytest.mark.parametrize("endpoint", list(IMAGE_ENDPOINTS))
@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_gets_a_specific_message(client, tmp_path: Path, tiny_clip: Path, endpoint: str, case: str) -> None:
    from gradio_client import handle_file

    make, expected = BAD_IMAGES[case]
    path = make(tmp_path)
    message = _error_of(lambda: IMAGE_ENDPOINTS[endpoint](client, handle_file(str(path)), clip=tiny_clip))
    assert re.search(expected, message), f"{case} via /{endpoint}: {message}"
    if "truncated" not in case:  # refused on upload, before any tab: the message names the user's file
        assert path.name in message, message


def _same_result_as_plain_png(client, tmp_path: Path, odd: Path, endpoint: str) -> None:
    """``odd`` must give exactly the result of its decoded pixels saved as a plain 8-bit PNG."""
    from gradio_client import handle_file

    plain = tmp_path / "plain.png"
    Image.fromarray(load_image(odd)).save(plain)
    run = IMAGE_ENDPOINTS[endpoint]
    got, want = run(client, handle_file(str(odd))), run(client, handle_file(str(plain)))
    np.testing.assert_array_equal(_rgb(got[0][1]), _rgb(want[0][1]))
    assert _rgb(got[0][1]).shape[:2] == load_image(plain).shape[:2]


@pytest.mark.parametrize("endpoint", ["restore", "colorize"])
def test_sixteen_bit_tiff_is_not_clipped(client, tmp_path: Path, endpoint: str) -> None:
    eight = _photo(36, 44, 2)[..., 0]
    path = tmp_path / "scan16.tif"
    Image.fromarray(eight.astype(np.uint16) * 257).save(path)  # a full-range 16-bit grayscale scan
    assert Image.open(path).mode.startswith("I;16")
    assert np.array_equal(load_image(path)[..., 0], eight)
    _same_result_as_plain_png(client, tmp_path, path, endpoint)


@pytest.mark.parametrize("endpoint", ["restore", "colorize"])
def test_animated_gif_uses_its_first_frame(client, tmp_path: Path, endpoint: str) -> None:
    frames = [Image.fromarray(_photo(32, 40, s)).quantize(16) for s in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    _same_result_as_plain_png(client, tmp_path, path, endpoint)


@pytest.mark.parametrize("endpoint", ["restore", "colorize"])
def test_one_pixel_image(client, tmp_path: Path, endpoint: str) -> None:
    """A 1x1 photo is either processed (a 1x1 result) or refused with a message saying so."""
    from gradio_client import handle_file

    path = tmp_path / "dot.png"
    Image.fromarray(np.full((1, 1, 3), 90, np.uint8)).save(path)
    try:
        result = IMAGE_ENDPOINTS[endpoint](client, handle_file(str(path)))
    except Exception as exc:
        message = str(exc)
        assert not any(bad in message for bad in UNSPECIFIC), message
        assert "small" in message or "1x1" in message, message
    else:
        assert _rgb(result[0][1]).shape == (1, 1, 3)


def test_photo_without_face_is_still_restored(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    path = tmp_path / "landscape.png"
    Image.fromarray(_photo(48, 64, 5)).save(path)
    (before, after), gallery, note = _restore(client, handle_file(str(path)), faces=True)
    assert _rgb(after).shape == (48, 64, 3)
    assert not np.array_equal(_rgb(after), _rgb(before))  # the rest of the photo was restored
    assert "no face" in note.lower()
    assert not any("Face" in (item.get("caption") or "") for item in gallery)


def test_animate_photo_without_face_is_refused(client, tmp_path: Path, tiny_clip: Path) -> None:
    from gradio_client import handle_file

    path = tmp_path / "noface.png"
    Image.fromarray(_photo(64, 64, 6)).save(path)
    message = _error_of(lambda: _animate(client, handle_file(str(path)), clip=tiny_clip))
    assert "No face was found in the photo" in message


def test_animate_driving_video_without_face_is_noted(client, tiny_clip: Path) -> None:
    """The example portrait driven by a clip without a face: whole frames are used, and the note says so."""
    from gradio_client import handle_file

    from pipelines.animation.examples import example_photo

    path = tiny_clip.with_name("portrait.png")
    Image.fromarray(example_photo()[::2, ::2]).save(path)
    video, side, note = _animate(client, handle_file(str(path)), clip=tiny_clip)
    assert Path(_file(video)).stat().st_size > 0 and side is None
    assert "No face found in the driving video" in note


# --------------------------------------------------------------------------- odd videos


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def _audio_only(path: Path) -> Path:
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=1", "-c:a", "aac", str(path))
    return path


def _too_long(path: Path) -> Path:
    seconds = LIMITS.max_video_seconds + 2
    _ffmpeg("-f", "lavfi", "-i", f"color=c=gray:s=32x32:r=1:d={seconds:g}", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    return path


def _too_large(path: Path) -> Path:
    side = 2 * (int(LIMITS.max_video_pixels**0.5) // 2 + 2)
    _ffmpeg("-f", "lavfi", "-i", f"color=c=gray:s={side}x{side}:r=2:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    return path


def _at_fps(path: Path, fps: int, seconds: float) -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size=16x16:rate={fps}", "-t", f"{seconds:g}", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


BAD_VIDEOS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zero-byte": (lambda d: _write(d / "empty.mp4", b""), r"empty or missing"),
    "text renamed .mp4": (
        lambda d: _write(d / "notes.mp4", b"not a video\n" * 50),
        r"not a readable video|no video stream",
    ),
    "no video frames (audio only)": (lambda d: _audio_only(d / "voice.mp4"), r"no video stream \(only audio\)"),
    "longer than the limit": (lambda d: _too_long(d / "long.mp4"), r"the limit is \d+ s"),
    "frames above the pixel limit": (lambda d: _too_large(d / "huge.mp4"), r"MP per frame"),
    "1000 fps": (lambda d: _at_fps(d / "k.mp4", 1000, 1), r"1000 frames per second is above the limit"),
    "more frames than the limit": (
        lambda d: _at_fps(d / "many.mp4", 100, LIMITS.max_video_frames / 100 + 1),
        r"frames \(frame rate x duration\) exceed the limit",
    ),
}


def _colorize_video(client, f, **kw) -> Any:
    return client.predict(f, "artistic", 7, True, 0.0, api_name="/colorize_video")


def _animate_video(client, f, **kw) -> Any:
    from gradio_client import handle_file

    return client.predict(handle_file(str(kw["photo"])), f, "vox", "relative", False, 1, False, api_name="/animate")


VIDEO_ENDPOINTS = {"colorize_video": _colorize_video, "animate": _animate_video}


@pytest.mark.parametrize("endpoint", list(VIDEO_ENDPOINTS))
@pytest.mark.parametrize("case", list(BAD_VIDEOS))
def test_bad_video_gets_a_specific_message(client, tmp_path: Path, endpoint: str, case: str) -> None:
    from gradio_client import handle_file

    from pipelines.animation.examples import example_photo

    photo = tmp_path / "portrait.png"
    Image.fromarray(example_photo()[::2, ::2]).save(photo)
    make, expected = BAD_VIDEOS[case]
    path = make(tmp_path)
    message = _error_of(lambda: VIDEO_ENDPOINTS[endpoint](client, handle_file(str(path)), photo=photo))
    assert re.search(expected, message), f"{case} via /{endpoint}: {message}"


# --------------------------------------------------------------------------- absurd settings


ABSURD: dict[str, tuple[str, tuple, str]] = {
    # name -> (api_name, arguments after the photo, regex of the message)
    "render factor far above the slider": ("/colorize", ("artistic", 10_000, True), r"greater than maximum"),
    "negative render factor": ("/colorize", ("artistic", -3, True), r"less than minimum"),
    "render factor as text": ("/colorize", ("artistic", "lots", True), r"Render factor: expected a finite number"),
    "unknown model": ("/colorize", ("../../etc/passwd", 7, True), r"not in the list of choices"),
    "sweep factor not offered": ("/colorize_sweep", ("artistic", [999], True), r"not in the list of choices"),
    "unknown animation mode": ("/animate", ("VIDEO", "vox", "sideways", False, 1, False), r"not in the list of choices"),
    "negative face number": ("/animate", ("VIDEO", "vox", "relative", False, -4, False), r"less than minimum"),
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_absurd_setting_is_refused(client, tmp_path: Path, tiny_clip: Path, case: str) -> None:
    from gradio_client import handle_file

    api_name, rest, expected = ABSURD[case]
    photo = tmp_path / "p.png"
    Image.fromarray(_photo()).save(photo)
    args = [handle_file(str(tiny_clip)) if a == "VIDEO" else a for a in rest]
    message = _error_of(lambda: client.predict(handle_file(str(photo)), *args, api_name=api_name))
    assert re.search(expected, message), f"{case}: {message}"


def _upload(base_url: str, path: Path) -> dict[str, Any]:
    import httpx

    with path.open("rb") as fh:
        response = httpx.post(f"{base_url}gradio_api/upload", files={"files": (path.name, fh)}, timeout=60)
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def raw_call(base_url: str, api_name: str, body: str) -> tuple[str, str]:
    """POST a hand-written JSON body to ``/gradio_api/call/<api_name>`` and read the event
    stream: (last event name, its data). For what ``gradio_client`` refuses to send (NaN)."""
    import httpx

    response = httpx.post(
        f"{base_url}gradio_api/call/{api_name}", content=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    response.raise_for_status()
    event_id = response.json()["event_id"]
    stream = httpx.get(f"{base_url}gradio_api/call/{api_name}/{event_id}", timeout=300).text
    events = [line.split(":", 1)[1].strip() for line in stream.splitlines() if line.startswith("event:")]
    datas = [line.split(":", 1)[1].strip() for line in stream.splitlines() if line.startswith("data:")]
    return events[-1], datas[-1]


NON_FINITE = {
    # name -> (api_name, JSON of the arguments after the photo, regex of the message)
    "NaN render factor": ("colorize", '"artistic", NaN, true, "auto"', r"Render factor: expected a finite number"),
    "infinite render factor": ("colorize", '"artistic", Infinity, true, "auto"', r"Render factor: expected a finite number"),
    "NaN face number": ("animate", 'VIDEO, "vox", "relative", false, NaN, false, 2, "auto"', r"Face number: expected a finite number"),
}


@pytest.mark.parametrize("case", list(NON_FINITE))
def test_non_finite_number_in_raw_json_is_refused(client, app_server, tmp_path: Path, tiny_clip: Path, case: str) -> None:
    """JSON from any HTTP client may carry NaN/Infinity (Python's parser accepts them); Gradio's
    range check lets NaN through, the app's input guard does not."""
    api_name, rest, expected = NON_FINITE[case]
    photo = tmp_path / "p.png"
    Image.fromarray(_photo()).save(photo)
    base = app_server.local_url
    rest = rest.replace("VIDEO", json.dumps(_upload(base, tiny_clip)))
    event, data = raw_call(base, api_name, f'{{"data": [{json.dumps(_upload(base, photo))}, {rest}]}}')
    assert event == "error", (event, data)
    assert re.search(expected, data), data


def test_video_smoothing_out_of_range_is_refused(client, tiny_clip: Path) -> None:
    from gradio_client import handle_file

    message = _error_of(
        lambda: client.predict(handle_file(str(tiny_clip)), "artistic", 7, True, 50.0, api_name="/colorize_video")
    )
    assert "greater than maximum" in message


def test_server_still_serves_after_all_of_it(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    path = tmp_path / "fine.png"
    Image.fromarray(_photo(24, 32, 9)).save(path)
    (_before, after), _download, note = _colorize(client, handle_file(str(path)))
    assert _rgb(after).shape == (24, 32, 3) and "render factor 7" in note


# --------------------------------------------------------------------------- Dance: a video without a person


@pytest.fixture()
def dance_data(tmp_path: Path) -> Any:
    """A private dance-targets folder (read by the app at each call, inherited by training jobs)."""
    import os

    saved = os.environ.get("NOSTALGIA_DATA_DIR")
    os.environ["NOSTALGIA_DATA_DIR"] = str(tmp_path / "dance-data")
    yield tmp_path / "dance-data"
    if saved is None:
        os.environ.pop("NOSTALGIA_DATA_DIR", None)
    else:
        os.environ["NOSTALGIA_DATA_DIR"] = saved


def test_dance_target_video_without_person_is_reported(client, ensure_fixtures, dance_data, tmp_path: Path) -> None:
    """Training starts in the background and returns at once; pose estimation then finds nobody
    and the job's status says so (it does not crash, and nothing keeps running)."""
    import time

    from gradio_client import handle_file

    ensure_fixtures(["edn/openpose_body"])
    frames = [np.roll(_photo(64, 48, 3), 2 * i, axis=0) for i in range(12)]
    empty_room = write_video(frames, tmp_path / "empty_room.mp4", 6)
    target, *_ = client.predict(
        handle_file(str(empty_room)), False, "empty room", "tiny", 1, False, None, False, api_name="/dance_train"
    )
    deadline = time.monotonic() + 240
    while True:
        summary, _preview = client.predict(target, api_name="/dance_status")
        if "no person was found" in summary or not any(s in summary for s in ("queued", "starting", "preparing", "training")):
            break
        assert time.monotonic() < deadline, summary
        time.sleep(3)
    assert "no person was found" in summary, summary
    assert "Traceback" not in summary
