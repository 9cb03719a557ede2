"""Faces: face-alignment's 2-D FAN (68 landmarks) and its S3FD face detector (optional).

The PyPI package ``face-alignment`` (1adrianb/face-alignment, >= 1.5) builds both networks as
plain ``nn.Module``\\ s (``face_alignment.models.FAN``, ``face_alignment.detection.sfd.net_s3fd.s3fd``)
and loads these two files with ``torch.load(weights_only=True)``; each file *is* the state dict.
The URLs are the ones the installed package itself uses (``face_alignment/api.py`` and
``face_alignment/detection/sfd/sfd_detector.py``).

The app never lets the package download anything: the files live in this registry's cache and
:func:`pipelines.common.faces.face_alignment_model` hands the package the networks loaded from
there (one place for the files; torch's hub cache is not used). Without them, dlib's 68-point
predictor is used (it ships inside the ``face-recognition-models`` wheel, nothing to download).

Hashes: the author publishes no sha256 and no size. The file names follow torch.hub's convention
``name-<first hex digits of the sha256>.ext`` (``11f355bf06``, ``619a316812``; face-alignment 1.0
downloaded them with the torch < 1.1 ``model_zoo.load_url``, which always checked that prefix). The
full sha256 values pinned below are stated by public projects that hashed the downloads from
adrianbulat.com, and each starts with its file name's prefix: S3FD's by two independent projects
(similaitw/ai-talking-photo's README, a LipForensics wrapper's pinned constants), FAN's by the latter.
Sizes stay unpublished: ``weights list`` shows the float32 bytes of the networks.
"""

from __future__ import annotations

from weights.registry import Checkpoint, Component, Source

TAB_ORDER = 5  # shared by Restore, Animate and Dance: listed after the tab families

HOMEPAGE = "https://github.com/1adrianb/face-alignment"
DLIB_FALLBACK = "dlib's 68-point predictor (installed with face-recognition-models)"
LICENCE = (
    "BSD-3-Clause (face-alignment's LICENSE, Copyright (c) 2017 Adrian Bulat); its README states no "
    "separate terms for the pretrained files, which are distributed by the author with the package"
)

CHECKPOINTS: list[Checkpoint] = [
    Checkpoint(
        id="face_alignment/fan_2d",
        family="face_alignment",
        filename="2DFAN4-11f355bf06.pth.tar",
        description=(
            "face-alignment's 2D-FAN-4 (four stacked hourglasses): the 68 iBUG-300W landmarks of a face, "
            "used by Animate's best-frame search (as the original demo) and Dance's 70 face points when present "
            "(else dlib's 68-point predictor)."
        ),
        licence=LICENCE,
        components=(
            Component(name="fan", builder="face_alignment.models:FAN", builder_args=(("num_modules", 4),), path=()),
        ),
        sources=(
            Source(url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar", note="face-alignment 1.5 (api.py models_urls['2DFAN-4'])"),
        ),
        sha256="11f355bf0693120222f5955ce3f9dc8fb5763ebb30a47d7906e509490d32e4aa",
        sha256_prefix="11f355bf06",
        size=None,
        homepage=HOMEPAGE,
        real_fallback=DLIB_FALLBACK,
        notes=(
            "Bulat & Tzimiropoulos, How far are we from solving the 2D & 3D Face Alignment problem? (ICCV 2017). "
            "No size is published (sha256: see the module docstring); face-alignment 1.4.x used a TorchScript export of the same network "
            "(2DFAN4-cd938726ad.zip), which this app does not load."
        ),
    ),
    Checkpoint(
        id="face_alignment/s3fd",
        family="face_alignment",
        filename="s3fd-619a316812.pth",
        description=(
            "S3FD single-shot face detector (VGG-16 based) as packaged by face-alignment: finds the faces whose "
            "landmarks FAN then fits. Needed together with face_alignment/fan_2d."
        ),
        licence=LICENCE + "; S3FD by Zhang et al. (ICCV 2017), trained on WIDER FACE",
        components=(Component(name="s3fd", builder="face_alignment.detection.sfd.net_s3fd:s3fd", path=()),),
        sources=(
            Source(url="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth", note="face-alignment 1.5 (sfd_detector.py models_urls['s3fd'])"),
        ),
        sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543",
        sha256_prefix="619a316812",
        size=None,
        homepage=HOMEPAGE,
        real_fallback=DLIB_FALLBACK,
        notes="Zhang et al., S3FD: Single Shot Scale-invariant Face Detector (ICCV 2017). No size is published (sha256: see the module docstring).",
    ),
]
