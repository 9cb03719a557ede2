"""Motion transfer: label frames -> generated frames, in order, each fed back as the previous one.

The test-time loop of the original (``test_fullts.py`` + ``Pix2PixHDModel.inference``):
``prev = 0``; ``I = G(cat(label_t, prev))``; with a face generator, its output on the 128x128
face box (input: label crop and I crop) is ADDED to that crop (no clamp); ``prev = I`` including
the residual. Frames leave as ``tensor2im``: ``clip((y + 1) / 2 * 255, 0, 255)`` truncated to uint8.

:func:`transfer_video` is the whole user-facing path: source video -> poses (Part A's
``estimate_poses``) -> normalised to the target (``normalize_poses``) -> labels
(``render_label``) -> frames -> H.264 with the source's audio, optionally side by side
(source | stick figure | result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

FaceBox = tuple[int, int, int, int]  # (miny, maxy, minx, maxx) in label pixels, as the facetexts files


def label_to_tensor(label: np.ndarray) -> torch.Tensor:
    """RGB uint8 label (H, W, 3) -> 1x3xHxW float in 0..1 (ToTensor; labels are NOT normalised)."""
    return torch.from_numpy(np.array(label, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 frame -> 1x3xHxW float in -1..1 (ToTensor then Normalize(0.5, 0.5))."""
    return label_to_tensor(image) * 2.0 - 1.0


def tensor_to_uint8(y: torch.Tensor) -> np.ndarray:
    """The original ``tensor2im`` of the first batch item: clip((y+1)/2*255, 0, 255), truncated."""
    arr = ((y[0].detach().float().cpu().permute(1, 2, 0) + 1.0) / 2.0 * 255.0).clamp(0, 255)
    return arr.numpy().astype(np.uint8)


@dataclass
class GeneratedFrame:
    """One step of the loop: the final frame and, when a face generator ran, its parts."""

    frame: torch.Tensor  # 1x3xHxW, -1..1 (may exceed it inside the face box: no clamp, as the original)
    initial_face: torch.Tensor | None = None
    face_residual: torch.Tensor | None = None


def clamp_box(box: FaceBox | None, height: int, width: int) -> FaceBox | None:
    """Keep a face box inside the frame; None when nothing of it remains (face out of view)."""
    if box is None:
        return None
    miny, maxy, minx, maxx = (int(v) for v in box)
    miny, minx = max(miny, 0), max(minx, 0)
    maxy, maxx = min(maxy, height), min(maxx, width)
    if maxy - miny < 8 or maxx - minx < 8:
        return None
    return miny, maxy, minx, maxx


def generate_step(
    netG: torch.nn.Module,  # noqa: N803 - original names
    faceG: torch.nn.Module | None,  # noqa: N803
    label: torch.Tensor,
    prev: torch.Tensor,
    box: FaceBox | None,
) -> GeneratedFrame:
    """One frame: ``G(cat(label, prev))`` plus the face residual on ``box`` (when both exist)."""
    initial = netG(torch.cat((label, prev), dim=1))
    if faceG is None or box is None:
        return GeneratedFrame(initial)
    miny, maxy, minx, maxx = box
    initial_face = initial[:, :, miny:maxy, minx:maxx]
    residual = faceG(torch.cat((label[:, :, miny:maxy, minx:maxx], initial_face), dim=1))
    out = initial.clone()
    out[:, :, miny:maxy, minx:maxx] = initial_face + residual
    return GeneratedFrame(out, initial_face, residual)


def generate_sequence(
    netG: torch.nn.Module,  # noqa: N803
    faceG: torch.nn.Module | None,  # noqa: N803
    labels: Sequence[torch.Tensor] | Iterator[torch.Tensor],
    boxes: Sequence[FaceBox | None] | None = None,
) -> Iterator[GeneratedFrame]:
    """Generate frames in order, each conditioned on the previous output (zeros for the first)."""
    prev: torch.Tensor | None = None
    for t, label in enumerate(labels):
        if prev is None:
            prev = torch.zeros_like(label)
        box = boxes[t] if boxes is not None else None
        box = clamp_box(box, label.shape[-2], label.shape[-1])
        step = generate_step(netG, faceG, label, prev, box)
        prev = step.frame
        yield step


ProgressFn = Callable[[float, str], None]
