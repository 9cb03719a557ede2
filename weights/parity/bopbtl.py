"""Parity handlers for "Bringing Old Photos Back to Life": networks and stage 1 (1a scratch detection, 1b global).

Everything (config, salts, gains, inputs, tolerances, thresholds) is read from the case. Network cases compare the
final outputs and every ``output.stage.<module>`` intermediate (captured with forward hooks on the same module
names; the original shares one ReLU instance per network, and so do we, so those hooks see the same calls).
Face alignment and warp-back cases are handled in ``weights/parity/bopbtl_faces.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from weights.parity.case import (
    Case,
    Outcome,
    compare_keys,
    compare_tensors,
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

@handler("bopbtl.scratch_detector_unet")
def detector_unet(case: Case) -> Outcome:
    model = _detector_from(case.config)

    def forward(image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = model(image)
        return {"logits": logits, "prob": torch.sigmoid(logits)}

    return _run_network(case, model, forward)


@handler("bopbtl.vae_a")
def vae_a(case: Case) -> Outcome:
    model = _vae_from(case.config)
    return _run_network(case, model, lambda image: {"feature": model(image, flow="enc")})


@handler("bopbtl.vae_b")
def vae_b(case: Case) -> Outcome:
    model = _vae_from(case.config)
    return _run_network(case, model, lambda feature: {"image": model(feature, flow="dec")})


@handler("bopbtl.mapping_quality")
def mapping_quality(case: Case) -> Outcome:
    from pipelines.restoration.networks.mapping import MappingModel

    model = MappingModel(_mapping_config(case.config))
    return _run_network(case, model, lambda feature: {"feature": model(feature)})


@handler("bopbtl.mapping_scratch")
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


@handler("bopbtl.mapping_patch_attention_hr")
def mapping_patch_attention(case: Case) -> Outcome:
    from pipelines.restoration.networks.mapping import MappingModelPatchAttention

    model = MappingModelPatchAttention(_mapping_config(case.config))
    if case.io:
        return _run_network(case, model, lambda feature, mask: {"feature": model(feature, mask)})
    outcome = Outcome(note="(keys only)")
    outcome.add(compare_keys("keys", state_dict_shapes(model), case.keys or {}))
    return outcome


@handler("bopbtl.face_enhancement_generator_256", "bopbtl.face_enhancement_generator_512")
def face_generator(case: Case) -> Outcome:
    model = _face_from(case.config)
    return _run_network(case, model, lambda seg, face: {"image": model(seg, face)})
