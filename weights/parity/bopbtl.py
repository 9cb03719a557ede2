"""Parity handlers for "Bringing Old Photos Back to Life": networks and stage 1 (1a scratch detection, 1b global).

Everything (config, salts, gains, inputs, tolerances, thresholds) is read from the case. Network cases compare the
final outputs and every ``output.stage.<module>`` intermediate (captured with forward hooks on the same module
names; the original shares one ReLU instance per network, and so do we, so those hooks see the same calls).
Face alignment and warp-back cases are handled in ``weights/parity/bopbtl_faces.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from weights.parity.case import (
    Case,
    Outcome,
    compare_images,
    compare_keys,
    compare_tensors,
    load_image,
    state_dict_shapes,
)
from weights.parity.runner import handler


def _configs():
    from pipelines.restoration import config as rc

    return rc


def _detector_from(cfg: dict[str, Any]) -> nn.Module:
    rc = _configs()
    from pipelines.restoration.networks.detector import ScratchDetectorUNet

    if cfg.get("up_mode", "upsample") != "upsample" or not cfg.get("antialiasing", True):
        raise NotImplementedError(f"detector variant not published: {cfg}")
    if cfg.get("with_tanh") or not cfg.get("batch_norm", True) or not cfg.get("padding", True):
        raise NotImplementedError(f"detector variant not published: {cfg}")
    base = rc.DetectorConfig()
    return ScratchDetectorUNet(
        rc.DetectorConfig(
            in_channels=int(cfg.get("in_channels", base.in_channels)),
            out_channels=int(cfg.get("out_channels", base.out_channels)),
            depth=int(cfg.get("depth", base.depth)),
            conv_num=int(cfg.get("conv_num", base.conv_num)),
            wf=int(cfg.get("wf", base.wf)),
        )
    )


def _vae_from(cfg: dict[str, Any]) -> nn.Module:
    rc = _configs()
    from pipelines.restoration.networks.vae import GlobalGeneratorDCDCv2

    if not str(cfg.get("norm", "instance")).startswith("instance") or cfg.get("use_segmentation_model"):
        raise NotImplementedError(f"VAE variant not published: {cfg}")
    if cfg.get("padding_type", "reflect") != "reflect":
        raise NotImplementedError(f"VAE padding {cfg.get('padding_type')!r} not published")
    base = rc.VAEConfig()
    return GlobalGeneratorDCDCv2(
        rc.VAEConfig(
            input_nc=int(cfg.get("input_nc", base.input_nc)),
            output_nc=int(cfg.get("output_nc", base.output_nc)),
            ngf=int(cfg.get("ngf", base.ngf)),
            mc=int(cfg.get("mc", base.mc)),
            k_size=int(cfg.get("k_size", base.k_size)),
            n_downsampling=int(cfg.get("n_downsample_global", base.n_downsampling)),
            start_r=int(cfg.get("start_r", base.start_r)),
            spatio_size=int(cfg.get("spatio_size", base.spatio_size)),
            feat_dim=int(cfg.get("feat_dim", base.feat_dim)),
        )
    )


def _mapping_config(cfg: dict[str, Any]):
    rc = _configs()
    if not str(cfg.get("norm", "instance")).startswith("instance"):
        raise NotImplementedError(f"mapping norm {cfg.get('norm')!r} not published")
    if cfg.get("cosin_similarity") or cfg.get("use_self"):
        raise NotImplementedError("non-local variants with cosine similarity / self attention are not published")
    if cfg.get("NL_fusion_method", "combine") != "combine":
        raise NotImplementedError(f"NL fusion {cfg.get('NL_fusion_method')!r} not published")
    base = rc.MappingConfig()
    return rc.MappingConfig(
        map_mc=int(cfg.get("map_mc", base.map_mc)),
        n_blocks=int(cfg.get("mapping_n_block", base.n_blocks)),
        dilation=int(cfg.get("mapping_net_dilation", base.dilation)),
        feat_dim=int(cfg.get("feat_dim", base.feat_dim)),
        softmax_temperature=float(cfg.get("softmax_temperature", base.softmax_temperature)),
        correlation_renormalize=bool(cfg.get("correlation_renormalize", base.correlation_renormalize)),
        patch_sizes=tuple(int(p) for p in cfg.get("patch_sizes", base.patch_sizes)),
    )


def _face_from(cfg: dict[str, Any]) -> nn.Module:
    rc = _configs()
    from pipelines.restoration.networks.spade import SPADEFaceGenerator

    if cfg.get("use_vae") or cfg.get("injection_layer", "all") != "all" or not cfg.get("no_parsing_map", True):
        raise NotImplementedError(f"face generator variant not published: {cfg}")
    if cfg.get("num_upsampling_layers", "normal") != "normal" or "spectral" not in cfg.get("norm_G", "spectral"):
        raise NotImplementedError(f"face generator variant not published: {cfg}")
    base = rc.FaceGeneratorConfig()
    return SPADEFaceGenerator(
        rc.FaceGeneratorConfig(
            load_size=int(cfg.get("load_size", base.load_size)),
            ngf=int(cfg.get("ngf", base.ngf)),
            spade_hidden=int(cfg.get("spade_nhidden", base.spade_hidden)),
            aspect_ratio=float(cfg.get("aspect_ratio", base.aspect_ratio)),
        )
    )


def _load_fixture(case: Case, module: nn.Module) -> nn.Module:
    module.load_state_dict(case.fixture(), strict=True)
    return module.eval()


def _stage_hooks(module: nn.Module, io: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list]:
    """Hook every submodule named by an ``output.stage.<name>`` entry; the last call's output is kept."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for key in io:
        if not key.startswith("output.stage."):
            continue
        name = key[len("output.stage.") :]
        sub = module.get_submodule(name)

        def hook(_m, _inp, out, _key=key):
            captured[_key] = out.detach().clone()

        handles.append(sub.register_forward_hook(hook))
    return captured, handles


def _run_network(
    case: Case,
    module: nn.Module,
    forward: Callable[..., dict[str, torch.Tensor]],
    outcome: Outcome | None = None,
) -> Outcome:
    """Load the case's fixture weights, call ``forward(*inputs)`` (inputs in ``forward.args`` order) and compare
    every ``output.*`` entry (final outputs by name, ``output.stage.*`` by hooks)."""
    outcome = outcome or Outcome()
    outcome.add(compare_keys("keys", state_dict_shapes(module), case.keys or {}))
    _load_fixture(case, module)
    io = case.io
    args = [io[name] for name in case.meta["forward"]["args"]]
    captured, handles = _stage_hooks(module, io)
    try:
        torch.manual_seed(0)
        with torch.no_grad():
            outputs = forward(*args)
    finally:
        for h in handles:
            h.remove()
    produced = {**{f"output.{k}": v for k, v in outputs.items()}, **captured}
    for key, expected in io.items():
        if not key.startswith("output."):
            continue
        if key not in produced:
            outcome.add(compare_tensors(key, torch.empty(0), expected, case.atol, case.rtol))
            continue
        outcome.add(compare_tensors(key, produced[key], expected, case.atol, case.rtol))
    return outcome


# --------------------------------------------------------------------------- networks

@handler("bopbtl.scratch_detector_unet", kinds=("network",))
def detector_unet(case: Case) -> Outcome:
    model = _detector_from(case.config)

    def forward(image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = model(image)
        return {"logits": logits, "prob": torch.sigmoid(logits)}

    return _run_network(case, model, forward)


@handler("bopbtl.vae_a", kinds=("network",))
def vae_a(case: Case) -> Outcome:
    model = _vae_from(case.config)
    return _run_network(case, model, lambda image: {"feature": model(image, flow="enc")})


@handler("bopbtl.vae_b", kinds=("network",))
def vae_b(case: Case) -> Outcome:
    model = _vae_from(case.config)
    return _run_network(case, model, lambda feature: {"image": model(feature, flow="dec")})


@handler("bopbtl.mapping_quality", kinds=("network",))
def mapping_quality(case: Case) -> Outcome:
    from pipelines.restoration.networks.mapping import MappingModel

    model = MappingModel(_mapping_config(case.config))
    return _run_network(case, model, lambda feature: {"feature": model(feature)})


@handler("bopbtl.mapping_scratch", kinds=("network",))
def mapping_scratch(case: Case) -> Outcome:
    """Dense-sized blocks and small query blocks must both reproduce the original's dense attention."""
    from pipelines.restoration.networks.mapping import MappingModelWithMask

    model = MappingModelWithMask(_mapping_config(case.config))
    outcome = _run_network(case, model, lambda feature, mask: {"feature": model(feature, mask)})
    io = case.io
    args = [io[name] for name in case.meta["forward"]["args"]]
    length = args[0].shape[2] * args[0].shape[3]
    chunk = max(1, length // 5 + 1)  # blocks that do not divide the row count, to exercise the remainder
    model.set_attention_chunk(chunk)
    torch.manual_seed(0)
    with torch.no_grad():
        got = model(*args)
    outcome.add(compare_tensors(f"output.feature[chunk={chunk}]", got, io["output.feature"], case.atol, case.rtol))
    return outcome


@handler("bopbtl.mapping_patch_attention_hr", kinds=("network",))
def mapping_patch_attention(case: Case) -> Outcome:
    from pipelines.restoration.networks.mapping import MappingModelPatchAttention

    model = MappingModelPatchAttention(_mapping_config(case.config))
    if case.io:
        return _run_network(case, model, lambda feature, mask: {"feature": model(feature, mask)})
    outcome = Outcome(note="(keys only)")
    outcome.add(compare_keys("keys", state_dict_shapes(model), case.keys or {}))
    return outcome


@handler("bopbtl.face_enhancement_generator_256", "bopbtl.face_enhancement_generator_512", kinds=("network",))
def face_generator(case: Case) -> Outcome:
    model = _face_from(case.config)
    return _run_network(case, model, lambda seg, face: {"image": model(seg, face)})


# --------------------------------------------------------------------------- stage 1 pipelines


def _read_rgb(path) -> np.ndarray:
    """As the original scripts read inputs: ``Image.open(path).convert("RGB")`` (no EXIF transpose)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def _png_tolerance(case: Case) -> tuple[float, float | None]:
    return float(case.meta.get("max_abs_diff", 1)), case.meta.get("mean_abs_diff")


@handler("bopbtl.scratch_detection", kinds=("pipeline",))
def scratch_detection(case: Case) -> Outcome:
    """Stage 1a end to end (detection.py ``--input_size full_size``) with fixture UNet weights."""
    rc = _configs()
    from pipelines.restoration.networks.detector import ScratchDetectorUNet
    from pipelines.restoration.stage1 import ScratchDetector

    cfg = case.config
    if cfg.get("input_size", "full_size") != "full_size":
        raise NotImplementedError(f"input_size {cfg.get('input_size')!r}: only full_size is used by run.py")
    base = rc.Stage1Config()
    stage_cfg = rc.Stage1Config(
        detect_multiple=int(cfg.get("multiple", base.detect_multiple)),
        detect_short_side=int(cfg.get("scale_short_side", base.detect_short_side)),
        detect_threshold=float(cfg.get("threshold", base.detect_threshold)),
    )
    unet = ScratchDetectorUNet()
    unet.load_state_dict(case.fixture(state_dict_shapes(unet)), strict=True)
    detector = ScratchDetector(unet, torch.device("cpu"), stage_cfg)
    image = _read_rgb(case.file(case.meta["input"]["image"]))
    _, scaled = detector.network_input(image)
    torch.manual_seed(0)
    result = detector(image)
    outcome = Outcome()
    produced = {"output.gray_scaled": scaled, "output.logits": result.logits, "output.prob": result.prob}
    for key, expected in case.io.items():
        if key.startswith("output."):
            got = produced.get(key, torch.empty(0))
            outcome.add(compare_tensors(key, got, expected, case.atol, case.rtol))
    max_diff, mean_diff = _png_tolerance(case)
    transformed = case.named("expected", "transformed_input")
    if transformed is not None and transformed.exists():
        outcome.add(compare_images("transformed_input", result.image, load_image(transformed), max_diff, mean_diff))
    mask = case.named("expected", "mask")
    if mask is not None and mask.exists():
        want_mask = load_image(mask)
        got_mask = np.repeat(result.mask[..., None], 3, axis=2) if want_mask.ndim == 3 else result.mask
        fraction = float(case.meta.get("mask_max_differing_pixel_fraction", 0.0))
        outcome.add(compare_images("mask", got_mask, want_mask, 255, None, fraction))
    return outcome


def _salt_for(salts: dict[str, str], role: str) -> str:
    """The salt whose description names ``role`` ("vae_a", "mapping", "vae_b"), case- and punctuation-insensitive."""
    for key, salt in salts.items():
        if role in key.lower().replace(" ", "_").replace("-", "_"):
            return salt
    raise KeyError(f"no salt for {role!r} in {sorted(salts)}")


@handler("bopbtl.stage1_quality_restore", kinds=("pipeline",))
def stage1_quality(case: Case) -> Outcome:
    """Stage 1b quality mode end to end (test.py ``--test_mode Full --Quality_restore``) with fixture weights."""
    rc = _configs()
    from pipelines.restoration.networks.mapping import MappingModel
    from pipelines.restoration.networks.vae import GlobalGeneratorDCDCv2
    from pipelines.restoration.stage1 import GlobalRestorer, save_image_uint8

    cfg = case.config
    if cfg.get("test_mode", "Full") != "Full":
        raise NotImplementedError(f"test_mode {cfg.get('test_mode')!r}: only Full is used by run.py")
    stage_cfg = rc.Stage1Config(restore_multiple=int(cfg.get("multiple", rc.Stage1Config().restore_multiple)))
    salts = case.meta["salts"]
    nets = []
    for role, module in (("vae_a", GlobalGeneratorDCDCv2()), ("mapping", MappingModel()), ("vae_b", GlobalGeneratorDCDCv2())):
        module.load_state_dict(case.fixture(state_dict_shapes(module), salt=_salt_for(salts, role)), strict=True)
        nets.append(module)
    restorer = GlobalRestorer(*nets, mode="quality", device=torch.device("cpu"), config=stage_cfg)
    image = _read_rgb(case.file(case.meta["input"]["image"]))
    resized, _, _ = restorer.prepare(image, None)
    torch.manual_seed(0)
    generated = restorer.generate(image)
    restored = save_image_uint8((generated + 1.0) / 2.0, normalize=True)
    outcome = Outcome()
    for key, expected in case.io.items():
        if key.startswith("output."):
            got = generated if key == "output.generated" else torch.empty(0)
            outcome.add(compare_tensors(key, got, expected, case.atol, case.rtol))
    max_diff, mean_diff = _png_tolerance(case)
    for role, got in (("resized_input", resized), ("restored", restored)):
        path = case.named("expected", role)
        if path is not None and path.exists():
            outcome.add(compare_images(role, got, load_image(path), max_diff, mean_diff))
    return outcome
