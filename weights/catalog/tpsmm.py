"""Animate (Thin-Plate Spline Motion Model): the four released checkpoints of yoyo-nb/Thin-Plate-Spline-Motion-Model.

Each ``<name>.pth.tar`` is a ``torch.save`` dict whose top-level entries are separate state dicts:
``kp_detector``, ``dense_motion_network``, ``inpainting_network``, ``avd_network`` (the demo loads it
only "if present") and, for configs trained with ``bg: True`` (vox, taichi, ted), ``bg_predictor``
(used by training/reconstruction only), plus optimizer state and ``epoch``, which are ignored.

The authors publish the files only through folder pages (Google Drive, Yandex Disk, Baidu Yun; the
Tsinghua Cloud folder is struck out in their README): download ``<name>.pth.tar`` from one of them by
hand. No byte sizes or hashes are published, so ``size``/``sha256`` are None; no Hugging Face mirror
is listed because none could be confirmed.
"""

from __future__ import annotations

from weights.registry import Checkpoint, Component, Source

TAB_ORDER = 3  # position of this family in listings (the app's tab order)

HOMEPAGE = "https://github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model"
LICENCE = "MIT (repository LICENSE, Copyright (c) 2021 yoyo-nb); the models were trained on research data sets"
_NETWORKS = ("kp_detector", "dense_motion_network", "inpainting_network", "avd_network")


def _sources(filename: str) -> tuple[Source, ...]:
    return (
        Source(
            url="https://drive.google.com/drive/folders/1pNDo1ODQIb5HVObRtCmubqJikmR7VVLT?usp=sharing",
            note=f"authors' README, Google Drive folder page: download {filename} by hand",
        ),
        Source(url="https://disk.yandex.com/d/bWopgbGj1ZUV1w", note=f"authors' README, Yandex Disk folder page: download {filename} by hand"),
        Source(
            url="https://pan.baidu.com/s/1hnXmDpIbRC6WqE3tF9c5QA?pwd=1234",
            note=f"authors' README, Baidu Yun folder page (password 1234): download {filename} by hand",
        ),
        Source(url="https://cloud.tsinghua.edu.cn/d/30ab8765da364fefa101/", note="original Tsinghua Cloud folder (struck out in the README; may be gone)"),
    )


def _checkpoint(name: str, description: str, bg: bool) -> Checkpoint:
    entries = (*_NETWORKS, "bg_predictor") if bg else _NETWORKS
    filename = f"{name}.pth.tar"
    return Checkpoint(
        id=f"tpsmm/{name}",
        family="tpsmm",
        filename=filename,
        description=description,
        licence=LICENCE,
        components=tuple(
            Component(
                name=entry,
                builder="pipelines.animation.config:build_network",
                builder_args=(("config", name), ("network", entry)),
                path=(entry,),
            )
            for entry in entries
        ),
        sources=_sources(filename),
        sha256=None,
        size=None,
        homepage=HOMEPAGE,
        notes="config/" + {"vox": "vox-256", "taichi": "taichi-256", "ted": "ted-384", "mgif": "mgif-256"}[name] + ".yaml of the original. The file also holds optimizer state, so it is larger than its networks.",
        optional_components=("avd_network", "bg_predictor") if bg else ("avd_network",),
    )


CHECKPOINTS: list[Checkpoint] = [
    _checkpoint(
        "vox",
        "TPSMM trained on VoxCeleb talking heads at 256x256: animates a portrait by a talking-face video "
        "(the Deep Nostalgia use case). 10 TPS transforms x 5 keypoints, multi-resolution occlusion masks, AVD network.",
        bg=True,
    ),
    _checkpoint(
        "taichi",
        "TPSMM trained on TaiChiHD at 256x256: animates a full standing body by a full-body video.",
        bg=True,
    ),
    _checkpoint(
        "ted",
        "TPSMM trained on TED-talks at 384x384: animates a presenter's upper body by a talk video.",
        bg=True,
    ),
    _checkpoint(
        "mgif",
        "TPSMM trained on MGif at 256x256: animates cartoon (pixel-art style) animals on plain backgrounds; no background predictor.",
        bg=False,
    ),
]
