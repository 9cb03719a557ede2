"""Parity handlers for the Thin-Plate Spline Motion Model (``tpsmm.*`` reference cases).

Everything (constructor arguments, salts, inputs, frame lists, tolerances) is read from the case.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipelines.animation import networks as N
from pipelines.animation.config import PIPELINE_NETWORKS, config_from_model_params
from weights.parity.case import (
    Case,
    Comparison,
    Outcome,
    compare_images,
    compare_keys,
    compare_tensors,
    load_image,
    state_dict_shapes,
)
from weights.parity.runner import handler


def _load(module: torch.nn.Module, case: Case, shapes: dict[str, list[int]] | None = None, salt: str | None = None) -> torch.nn.Module:
    module.load_state_dict(case.fixture(shapes if shapes is not None else case.keys, salt=salt), strict=True)
    return module.eval()


def _keys_check(outcome: Outcome, name: str, module: torch.nn.Module, expected: dict[str, list[int]] | None) -> None:
    if expected is not None:
        outcome.add(compare_keys(f"{name}.keys", state_dict_shapes(module), expected))


def _cmp(outcome: Outcome, case: Case, name: str, got: torch.Tensor, atol: float | None = None) -> None:
    outcome.add(compare_tensors(name, got, case.io[name], case.atol if atol is None else atol, case.rtol))


def _kp_arg(spec: Any, io: dict[str, torch.Tensor]) -> torch.Tensor:
    return io[spec["fg_kp"]] if isinstance(spec, dict) else io[spec]


def _args(case: Case) -> dict[str, Any]:
    return (case.config or {}).get("constructor_args", {})


@handler("tpsmm.kp_detector", kinds=("network",))
def kp_detector(case: Case) -> Outcome:
    out = Outcome()
    net = N.KPDetector(**_args(case))
    _keys_check(out, "state_dict", net, case.keys)
    _load(net, case)
    image = case.io[case.meta["forward"]["args"]["image"]]
    torch.manual_seed(0)
    feats = N.resnet18_features(net.fg_encoder, image)
    logits = net.fg_encoder.fc(feats)
    stages = {"output.stage.fg_encoder.avgpool": feats, "output.stage.fg_encoder.fc": logits, "output.fg_kp": net(image)}
    for name, value in stages.items():
        if name in case.io:
            _cmp(out, case, name, value)
    return out


@handler("tpsmm.bg_predictor", kinds=("network",))
def bg_predictor(case: Case) -> Outcome:
    out = Outcome()
    net = N.BGMotionPredictor(**_args(case))
    _keys_check(out, "state_dict", net, case.keys)
    _load(net, case)
    args = case.meta["forward"]["args"]
    src, drv = case.io[args["source_image"]], case.io[args["driving_image"]]
    torch.manual_seed(0)
    matrix = net(src, drv)
    fc = net.bg_encoder.fc(N.resnet18_features(net.bg_encoder, torch.cat([src, drv], 1)))
    if "output.stage.bg_encoder.fc" in case.io:
        _cmp(out, case, "output.stage.bg_encoder.fc", fc)
        rows = case.io["output.stage.bg_encoder.fc"].view(-1, 2, 3)
        expected = torch.cat([rows, torch.tensor([0.0, 0.0, 1.0]).expand(rows.shape[0], 1, 3)], 1)
        out.add(compare_tensors("output(3x3 from fc)", matrix, expected, case.atol, case.rtol))
    if "output" in case.io:
        _cmp(out, case, "output", matrix)
    return out


@handler("tpsmm.avd_network", kinds=("network",))
def avd_network(case: Case) -> Outcome:
    out = Outcome()
    net = N.AVDNetwork(**_args(case))
    _keys_check(out, "state_dict", net, case.keys)
    _load(net, case)
    args = case.meta["forward"]["args"]
    kp_s, kp_r = _kp_arg(args["kp_source"], case.io), _kp_arg(args["kp_random"], case.io)
    torch.manual_seed(0)
    bs = kp_r.shape[0]
    stages = {
        "output.fg_kp": net(kp_s, kp_r),
        "output.stage.pose_encoder": net.pose_encoder(kp_r.reshape(bs, -1)),
        "output.stage.id_encoder": net.id_encoder(kp_s.reshape(bs, -1)),
    }
    for name, value in stages.items():
        if name in case.io:
            _cmp(out, case, name, value)
    return out


@handler("tpsmm.dense_motion_network", kinds=("network",))
def dense_motion_network(case: Case) -> Outcome:
    out = Outcome()
    net = N.DenseMotionNetwork(**_args(case))
    _keys_check(out, "state_dict", net, case.keys)
    _load(net, case)
    args = case.meta["forward"]["args"]
    source = case.io[args["source_image"]]
    kp_d, kp_s = _kp_arg(args["kp_driving"], case.io), _kp_arg(args["kp_source"], case.io)
    bg = case.io[args["bg_param"]] if args.get("bg_param") else None
    torch.manual_seed(0)
    motion = net(source, kp_d, kp_s, bg_param=bg)
    down = net.down(source)
    h, w = down.shape[2:]
    heat = N.gaussian_heatmaps(kp_d, h, w, net.kp_variance) - N.gaussian_heatmaps(kp_s, h, w, net.kp_variance)
    heatmap = torch.cat([heat.new_zeros(heat.shape[0], 1, h, w), heat], 1)
    got: dict[str, torch.Tensor] = {
        "output.deformed_source": motion.deformed_source,
        "output.contribution_maps": motion.contribution_maps,
        "output.deformation": motion.deformation,
        "output.stage.down": down,
        "output.stage.transformations": motion.transformations,
        "output.stage.maps_logits": motion.maps_logits,
    }
    for i, mask in enumerate(motion.occlusion_map):
        got[f"output.occlusion_map.{i}"] = mask
    for name in case.io:
        if name.startswith("output.stage.heatmap.first"):
            n = int(name.rsplit("first", 1)[1].removesuffix("ch"))
            got[name] = heatmap[:, :n]
    for name in case.meta.get("outputs_stored", [n for n in case.io if n.startswith("output.")]):
        if name.startswith("output.aux."):
            continue  # constructor values, not outputs
        if name not in got:
            out.add(Comparison(name, False, float("inf"), "produced", "not produced by the network"))
            continue
        _cmp(out, case, name, got[name])
    if "output.aux.down_weight_at_init" in case.io:
        fresh = N.DenseMotionNetwork(**_args(case)).down.weight
        _cmp(out, case, "output.aux.down_weight_at_init", fresh, atol=1e-6)
    return out


@handler("tpsmm.inpainting_network", kinds=("network",))
def inpainting_network(case: Case) -> Outcome:
    out = Outcome()
    net = N.InpaintingNetwork(**_args(case))
    _keys_check(out, "state_dict", net, case.keys)
    _load(net, case)
    args = case.meta["forward"]["args"]
    source = case.io[args["source_image"]]
    dm = args["dense_motion"]
    masks = [case.io[k] for k in dm["occlusion_map"]]
    torch.manual_seed(0)
    warped: list[torch.Tensor] = []
    prediction, deformed = net.decode(source, net.encode(source), case.io[dm["deformation"]], masks, warped_maps=warped)
    got = {"output.prediction": prediction, "output.deformed": deformed}
    for i, w in enumerate(warped):
        got[f"output.stage.warped_encoder_maps.{i}.first4ch"] = w[:, :4]
    for name in case.io:
        if name.startswith("output."):
            _cmp(out, case, name, got[name])
    return out


@handler("tpsmm.checkpoint", kinds=("network",))
def checkpoint(case: Case) -> Outcome:
    """Whole-checkpoint keys of a released config, plus the cheap kp_detector / avd io."""
    out = Outcome()
    cfg = config_from_model_params(case.config["model_params"])
    modules = {entry: cfg.build(entry) for entry in cfg.components}
    got = {f"{entry}.{k}": v for entry, m in modules.items() for k, v in state_dict_shapes(m).items()}
    if case.keys is not None:
        out.add(compare_keys("checkpoint.keys", got, case.keys))
    salt_template = (case.salt or "").split()[0]
    for entry, spec in (case.meta.get("forward") or {}).items():
        if entry not in modules:
            continue
        net = modules[entry]
        shapes = {k[len(entry) + 1 :]: s for k, s in (case.keys or got).items() if k.startswith(entry + ".")}
        _load(net, case, shapes, salt_template.replace("<subnet>", entry))
        torch.manual_seed(0)
        args = spec["args"]
        if entry == "kp_detector":
            result = net(case.io[args["image"]])
        elif entry == "avd_network":
            result = net(_kp_arg(args["kp_source"], case.io), _kp_arg(args["kp_random"], case.io))
        else:
            continue
        for name in spec["outputs"]:
            _cmp(out, case, name, result)
    return out


@handler("tpsmm.demo.make_animation", kinds=("pipeline",))
def make_animation(case: Case) -> Outcome:
    """demo.py end to end: skimage-0.18.3 resize, keypoints, relative/standard/avd, frames."""
    from pipelines.animation.pipeline import TPSMMPipeline
    from pipelines.animation.preprocess import resize_like_skimage_0183, to_uint8_like_skimage

    out = Outcome()
    cfg_meta = case.config
    cfg = config_from_model_params(cfg_meta["model_params"]) if "model_params" in cfg_meta else None
    if cfg is None:
        from pipelines.animation.config import get_config

        cfg = get_config(str(cfg_meta.get("file", "vox")).rsplit("/", 1)[-1].removesuffix(".yaml"))
    size = tuple(cfg_meta.get("img_shape", (cfg.img_size, cfg.img_size)))
    salts = case.meta.get("salts") or {}
    nets = {name: cfg.build(name) for name in PIPELINE_NETWORKS}
    for name, net in nets.items():
        salt = salts.get(name) or (case.salt or "").split()[0].replace("<subnet>", name)
        _load(net, case, state_dict_shapes(net), salt)
    pipe = TPSMMPipeline(cfg, **nets, device=torch.device("cpu"))

    inputs = case.meta["inputs"]
    source = load_image(case.file(inputs["source_image"]))
    frames = [load_image(case.file(p)) for p in inputs["driving_frames"]]
    source_f = resize_like_skimage_0183(source, size)[..., :3]
    driving_f = [resize_like_skimage_0183(f, size)[..., :3] for f in frames]
    if "output.stage.source_resized" in case.io:
        stage_atol = case.meta.get("stage_atol", {}).get("output.stage.source_resized", case.atol)
        _cmp(out, case, "output.stage.source_resized", torch.from_numpy(source_f.astype(np.float32)), atol=stage_atol)
    torch.manual_seed(0)
    result = pipe.animate_arrays(source_f, driving_f, mode=cfg_meta.get("mode", "relative"), return_stages=True)
    stage_atol = case.meta.get("stage_atol", {})
    stages = {
        "output.stage.kp_source": result.kp_source,
        "output.stage.kp_driving": result.kp_driving,
        "output.stage.kp_norm": result.kp_norm,
    }
    for name, value in stages.items():
        if name in case.io:
            _cmp(out, case, name, value, atol=stage_atol.get(name, case.atol))
    _cmp(out, case, "output.frames", torch.from_numpy(result.frames))
    for path in case.files("expected_frame_*.png"):  # the name the case.json's text gives them
        index = int(path.stem.rsplit("_", 1)[1])
        got8 = to_uint8_like_skimage(result.frames[index])
        out.add(compare_images(path.name, got8, load_image(path), case.meta.get("max_abs_diff", 1), case.meta.get("mean_abs_diff")))
    return out
