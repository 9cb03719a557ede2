"""Stage 1 of "Bringing Old Photos Back to Life": 1a scratch detection, 1b global restoration.

API used by the restore pipeline (all images are RGB ``uint8`` arrays (H, W, 3); masks ``uint8`` (H, W), 0/255)::

    detect_scratches(image) -> mask                 # (H16, W16): W, H rounded to multiples of 16
    restore_global(image, mask=None, hr=False) -> restored
        # mask None: quality mode, output (H4, W4) (W, H rounded to multiples of 4)
        # mask given (from detect_scratches): scratch mode, output (H16, W16); hr=True uses the patch-attention
        # mapping and dilates the mask 3 times, as run.py --HR
    ScratchDetector.from_pretrained(device=None)(image) -> ScratchDetection(mask, image, logits; .prob)
    GlobalRestorer.from_pretrained(mode="quality" | "scratch", hr=False, device=None)(image, mask=None) -> restored
    GlobalRestorer.set_attention_chunk(rows)        # memory knob of the masked attention (None = automatic)
    GlobalRestorer(..., precision=None | "auto" | "exact")  # pipelines.common.precision; None = current mode

What the original does and where each quirk comes from (``Global/detection.py``, ``Global/test.py``):

- 1a: resize to multiples of 16 (``round(x/16)*16``, Python's half-to-even ``round``; PIL bicubic, only if a side
  changes), PIL "L" grey, [-1, 1], bilinear rescale so the *short* side is 256 (both sides multiples of 16), UNet,
  sigmoid, nearest upsample back, ``prob >= 0.4``. The mask is written with ``save_image(normalize=True)``, a
  min-max stretch: an all-scratch mask is therefore written (and used downstream) as all zeros.
- 1b quality: multiples of 4 (PIL bilinear, only if changed), [-1, 1], VAE_A encoder, mapping, VAE_B decoder,
  ``save_image((y+1)/2, normalize=True)``: min-max stretch over the whole image, never a clamp.
- 1b scratch: the multiple-of-16 image; holes painted white (``img*(1-m/255) + m``); the mask as (N,1,H,W) {0,1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pipelines.common import precision as precisions
from pipelines.common.device import cached_network, oom_guard, pick_device
from pipelines.common.errors import InputError
from pipelines.common.progress import stop_point
from pipelines.restoration.config import (
    DETECTOR_CHECKPOINT,
    QUALITY,
    SCRATCH,
    SCRATCH_HR,
    GlobalCheckpoints,
    Stage1Config,
)

DEFAULT_CONFIG = Stage1Config()
_MEMORY_HINT = "Try a smaller photo, or lower the attention block size (GlobalRestorer.set_attention_chunk)."

# --------------------------------------------------------------------------- pure functions


def round_to_multiple(value: float, multiple: int) -> int:
    """``int(round(value / multiple) * multiple)`` with Python's half-to-even ``round``, as the original."""
    return int(round(value / multiple) * multiple)


def check_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """An (H, W, 3) uint8 array, or a specific :class:`InputError`."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"The {what} must be an RGB uint8 array, not {type(image).__name__}.")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"The {what} must be an RGB uint8 array (H, W, 3); got {image.dtype} {image.shape}.")
    if min(image.shape[:2]) < 8:
        raise InputError(f"The {what} is too small ({image.shape[1]}x{image.shape[0]}); it needs at least 8x8 pixels.")
    return image


def resize_to_multiple(image: np.ndarray, multiple: int, resample: int) -> np.ndarray:
    """Round W and H to multiples of ``multiple`` and resize with PIL ``resample``, only if a side changes."""
    h, w = image.shape[:2]
    nh, nw = round_to_multiple(h, multiple), round_to_multiple(w, multiple)
    if nh == 0 or nw == 0:
        raise InputError(f"The image ({w}x{h}) is too small: both sides must round to at least {multiple} pixels.")
    if (nh, nw) == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((nw, nh), resample))


def detector_input_size(height: int, width: int, short_side: int = 256, multiple: int = 16) -> tuple[int, int]:
    """(H, W) of the detector input: short side ``short_side``, the other scaled, both rounded to ``multiple``.

    Same float expressions as ``detection.py:scale_tensor`` (e.g. 624x496 -> 320x256, 528x368 -> 368x256).
    """
    if height < width:
        new_h, new_w = short_side, width / height * short_side
    else:
        new_h, new_w = height / width * short_side, short_side
    return round_to_multiple(new_h, multiple), round_to_multiple(new_w, multiple)


def grey_tensor(image: np.ndarray) -> torch.Tensor:
    """PIL "L" (ITU-R 601 fixed point), ToTensor, Normalize(0.5, 0.5): (1,1,H,W) float32 in [-1, 1]."""
    grey = np.asarray(Image.fromarray(image).convert("L"))
    t = torch.from_numpy(grey.copy()).float().div(255)
    return t.sub(0.5).div(0.5)[None, None]


def _bilinear_axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (low, high) and the weight of ``high`` along one axis, computed in float32
    as the original's bilinear resize computes them (``align_corners=False``)."""
    scale = torch.tensor(n_in, dtype=torch.float32) / torch.tensor(n_out, dtype=torch.float32)
    src = ((torch.arange(n_out, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=n_in - 1)
    return low, (low + 1).clamp(max=n_in - 1), src - low.float()


def bilinear_like_original(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` as the original's detection
    ran it: float32 source coordinates, then a horizontal and a vertical linear blend. It matches
    the reference case to one float32 ulp, where this torch's own kernel differs by up to 1.3e-5,
    which the detector's large logits (hundreds) turn into visible mask differences."""
    rows_lo, rows_hi, row_w = _bilinear_axis(x.shape[-2], size[0])
    cols_lo, cols_hi, col_w = _bilinear_axis(x.shape[-1], size[1])
    horizontal = torch.lerp(x[..., cols_lo], x[..., cols_hi], col_w.to(x.dtype))
    return torch.lerp(horizontal[..., rows_lo, :], horizontal[..., rows_hi, :], row_w.to(x.dtype)[:, None])


def rgb_tensor(image: np.ndarray) -> torch.Tensor:
    """ToTensor + Normalize((0.5,)*3, (0.5,)*3): (1,3,H,W) float32 in [-1, 1]."""
    t = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255)
    return t.sub(0.5).div(0.5)[None]


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """First channel of ToTensor(mask): (1,1,H,W) float32 in [0, 1] (1 = scratch)."""
    m = mask if mask.ndim == 2 else mask[..., 0]
    return torch.from_numpy(np.array(m, dtype=np.uint8, copy=True)).float().div(255)[None, None]


def threshold_mask(prob: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    """Nearest upsample of the probability map to ``size`` (H, W), then ``prob >= threshold`` as float {0,1}."""
    return (F.interpolate(prob, list(size), mode="nearest") >= threshold).float()


def save_image_uint8(tensor: torch.Tensor, normalize: bool) -> np.ndarray:
    """What ``torchvision.utils.save_image(tensor, normalize=...)`` writes for one image, as (H, W, 3) uint8.

    ``normalize=True`` stretches min..max of the *whole* tensor to 0..1 (``max(max-min, 1e-5)`` as divisor; a
    constant tensor becomes all zeros); then ``x*255 + 0.5`` clamped to [0, 255] and truncated. Grey images are
    replicated to three channels.
    """
    t = tensor.detach().to("cpu", torch.float32)
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError("save_image_uint8 takes one image")
        t = t[0]
    t = t.clone()
    if normalize:
        low, high = float(t.min()), float(t.max())
        t.clamp_(min=low, max=high)
        t.sub_(low).div_(max(high - low, 1e-5))
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()


def dilate_mask(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``cv2.dilate`` with a 3x3 ones kernel (``--HR``: 3 iterations); 0 iterations returns the mask."""
    if iterations <= 0:
        return mask
    return cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=iterations)


def paint_holes(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``img * (1 - m/255) + m/255 * 255`` per channel in float64, truncated to uint8 (test.py)."""
    m = mask if mask.ndim == 3 else np.repeat(mask[..., None], 3, axis=2)
    m = m.astype(np.float64) / 255
    return (image.astype(np.float64) * (1 - m) + m * 255).astype(np.uint8)


# --------------------------------------------------------------------------- stage 1a


@dataclass(frozen=True)
class ScratchDetection:
    """Result of stage 1a."""

    mask: np.ndarray  # (H16, W16) uint8 0/255, as the original writes it (min-max quirk included)
    image: np.ndarray  # (H16, W16, 3) uint8: the multiple-of-16 input that scratch-mode restoration reads
    logits: torch.Tensor  # (1,1,h,w) UNet output at network resolution (short side 256)

    @property
    def prob(self) -> torch.Tensor:
        """Scratch probability at network resolution (``sigmoid(logits)``, as detection.py)."""
        return torch.sigmoid(self.logits)


class ScratchDetector:
    """Stage 1a. Build once (``from_pretrained``), call many times. The UNet always runs at short side 256."""

    def __init__(
        self,
        unet: nn.Module,
        device: torch.device | None = None,
        config: Stage1Config = DEFAULT_CONFIG,
        precision: str | None = None,
    ):
        self.unet = unet.eval()
        self.device = device or next(unet.parameters()).device
        self.config = config
        self.precision = precision and precisions.check_mode(precision)  # None: the current mode

    @classmethod
    def from_pretrained(
        cls, device: torch.device | None = None, config: Stage1Config = DEFAULT_CONFIG, precision: str | None = None
    ) -> ScratchDetector:
        device = device or pick_device()
        return cls(cached_network(DETECTOR_CHECKPOINT, "unet", device), device, config, precision)

    def network_input(self, image: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """(multiple-of-16 RGB image, rescaled grey tensor the UNet sees)."""
        cfg = self.config
        resized = resize_to_multiple(check_rgb(image), cfg.detect_multiple, Image.BICUBIC)
        grey = grey_tensor(resized)
        size = detector_input_size(grey.shape[2], grey.shape[3], cfg.detect_short_side, cfg.detect_multiple)
        return resized, bilinear_like_original(grey, size)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> ScratchDetection:
        resized, scaled = self.network_input(image)
        plan = precisions.plan("bopbtl.scratch_detector", self.device, self.precision)
        with oom_guard(_MEMORY_HINT), plan.autocast():
            logits = plan.prepare(self.unet)(plan.input(scaled.to(self.device))).float().cpu()
        mask = threshold_mask(torch.sigmoid(logits), resized.shape[:2], self.config.detect_threshold)
        return ScratchDetection(save_image_uint8(mask, normalize=True)[..., 0].copy(), resized, logits)


# --------------------------------------------------------------------------- stage 1b


class GlobalRestorer:
    """Stage 1b: VAE_A encoder -> mapping -> VAE_B decoder, with the original's pre/post-processing.

    ``mode`` "quality" (no scratches; ``mapping(z)``) or "scratch" (``mapping(z, mask)``); ``hr`` selects the
    patch-attention mapping and the dilated mask of ``--HR``.
    """

    def __init__(
        self,
        vae_a: nn.Module,
        mapping: nn.Module,
        vae_b: nn.Module,
        *,
        mode: str = "quality",
        hr: bool = False,
        device: torch.device | None = None,
        config: Stage1Config = DEFAULT_CONFIG,
        precision: str | None = None,
    ):
        if mode not in ("quality", "scratch"):
            raise ValueError(f"mode must be 'quality' or 'scratch', not {mode!r}")
        self.vae_a, self.mapping, self.vae_b = vae_a.eval(), mapping.eval(), vae_b.eval()
        self.mode, self.hr, self.config = mode, hr, config
        self.device = device or next(vae_a.parameters()).device
        self.precision = precision and precisions.check_mode(precision)  # None: the current mode
        self._chunk = config.attention_chunk
        self._budget = config.attention_budget_bytes

    @classmethod
    def from_pretrained(
        cls,
        mode: str = "quality",
        hr: bool = False,
        device: torch.device | None = None,
        config: Stage1Config = DEFAULT_CONFIG,
        precision: str | None = None,
    ) -> GlobalRestorer:
        device = device or pick_device()
        ids: GlobalCheckpoints = QUALITY if mode == "quality" else (SCRATCH_HR if hr else SCRATCH)
        return cls(
            cached_network(ids.vae_a, "generator", device),
            cached_network(ids.mapping, "mapping", device),
            cached_network(ids.vae_b, "generator", device),
            mode=mode,
            hr=hr,
            device=device,
            config=config,
            precision=precision,
        )

    def set_attention_chunk(self, chunk: int | None = None, budget_bytes: int | None = None) -> None:
        """Memory knob for scratch mode: query rows (patches for HR) per attention block; None = from the budget.

        Peak attention memory is about ``chunk * h*w * 4`` bytes for an (h, w) latent (a quarter of the photo).
        Applied at each call, because the cached networks are shared between restorers.
        """
        self._chunk = chunk
        if budget_bytes is not None:
            self._budget = budget_bytes

    def prepare(self, image: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, torch.Tensor, torch.Tensor | None]:
        """(image the networks see as uint8, its [-1,1] tensor, mask tensor or None)."""
        cfg = self.config
        check_rgb(image)
        if self.mode == "quality":
            if mask is not None:
                raise InputError("Quality restoration takes no scratch mask; use scratch mode for a mask.")
            resized = resize_to_multiple(image, cfg.restore_multiple, Image.BILINEAR)
            return resized, rgb_tensor(resized), None
        if mask is None:
            raise InputError("Scratch restoration needs the scratch mask from detect_scratches().")
        resized = resize_to_multiple(image, cfg.detect_multiple, Image.BICUBIC)
        if mask.dtype != np.uint8 or mask.ndim not in (2, 3) or mask.shape[:2] != resized.shape[:2]:
            raise InputError(
                f"The scratch mask must be uint8 with the size of the multiple-of-16 image {resized.shape[1]}x"
                f"{resized.shape[0]}; got {mask.dtype} {mask.shape[1] if mask.ndim > 1 else '?'}x{mask.shape[0]}."
            )
        if self.hr:
            mask = dilate_mask(mask, cfg.hr_mask_dilation)
        painted = paint_holes(resized, mask)
        return painted, rgb_tensor(painted), mask_tensor(mask)

    @torch.inference_mode()
    def generate(self, image: np.ndarray, mask: np.ndarray | None = None) -> torch.Tensor:
        """Decoder output (1,3,H,W) in [-1, 1], before the min-max save."""
        _, x, m = self.prepare(image, mask)
        return self.forward(x, m)

    def forward(self, x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        """Encoder -> mapping -> decoder on ready tensors, each network in its precision plan."""
        vae = precisions.plan("bopbtl.vae", self.device, self.precision)
        mapping_plan = precisions.plan(
            "bopbtl.mapping_quality" if m is None else "bopbtl.mapping_scratch", self.device, self.precision
        )
        if m is not None and hasattr(self.mapping, "set_attention_chunk"):
            mapping_plan.prepare(self.mapping).set_attention_chunk(self._chunk, self._budget)
        mapping = mapping_plan.runner(self.mapping)
        with oom_guard(_MEMORY_HINT):  # a Stop is honoured between the three networks (seconds each on a CPU)
            z = vae.runner(self.vae_a.encoder)(x.to(self.device))
            stop_point()
            z = mapping(z) if m is None else mapping(z, m.to(self.device))
            stop_point()
            return vae.runner(self.vae_b.decoder)(z).float().cpu()

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Restored photo, uint8 (H, W, 3), as the original's ``restored_image/`` PNG."""
        return save_image_uint8((self.generate(image, mask) + 1.0) / 2.0, normalize=True)

    @torch.inference_mode()
    def restore_many(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Quality mode on several photos of the same multiple-of-4 size in one forward pass (batch jobs).

        Each result is min-max saved on its own, as :meth:`__call__` would; on CPU the batched forward gave
        the same bytes as one call per photo on the test photos (batches only help on GPUs)."""
        if self.mode != "quality":
            raise ValueError("restore_many batches quality mode only (scratch masks differ per photo)")
        tensors = [self.prepare(image, None)[1] for image in images]
        if len({tuple(t.shape) for t in tensors}) != 1:
            raise InputError("restore_many needs photos of the same working size; group them first.")
        y = self.forward(torch.cat(tensors), None)
        return [save_image_uint8((y[i : i + 1] + 1.0) / 2.0, normalize=True) for i in range(len(images))]


# --------------------------------------------------------------------------- convenience


def detect_scratches(image: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """Scratch mask (H16, W16) uint8 0/255 of an RGB uint8 photo (see :class:`ScratchDetector`)."""
    return ScratchDetector.from_pretrained(device)(image).mask


def restore_global(
    image: np.ndarray, mask: np.ndarray | None = None, hr: bool = False, device: torch.device | None = None
) -> np.ndarray:
    """Stage-1 restored photo, uint8. ``mask`` None = quality mode; else scratch mode (``hr`` = ``--HR``)."""
    mode = "quality" if mask is None else "scratch"
    return GlobalRestorer.from_pretrained(mode, hr and mask is not None, device)(image, mask)
