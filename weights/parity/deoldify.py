"""Parity handlers for the DeOldify family (``deoldify.generator``, ``deoldify.image_colorizer``).

Everything comes from the case: which generator (``config.variant`` or the checkpoint file),
the fixture salt and gain, the input tensors or photo, the render factor and post-process flag,
and which intermediates to compare.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pipelines.colorization import pipeline as P
from pipelines.colorization.config import VARIANTS, GeneratorConfig
from pipelines.colorization.networks import DeOldifyGenerator
from weights import registry
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

# ``output.<name>`` intermediates of the network cases -> (index into ``layers``, index into the encoder or None)
_INTERMEDIATES: dict[str, tuple[int, int | None]] = {
    "encoder.relu": (0, 2),
    "encoder.layer1": (0, 4),
    "encoder.layer2": (0, 5),
    "encoder.layer3": (0, 6),
    "encoder.layer4": (0, 7),
    "bottleneck.bn_relu": (2, None),
    "bottleneck.middle_conv": (3, None),
    "decoder.block0": (4, None),
    "decoder.block1": (5, None),
    "decoder.block2": (6, None),
    "decoder.block3": (7, None),
    "head.pixel_shuffle": (8, None),
    "head.res_block": (10, None),
    "head.pre_sigmoid": (11, None),
}


def _config_for(case: Case) -> GeneratorConfig:
    """The generator of a case: ``config.builder_kind``/``variant``, else the checkpoint file's entry."""
    cfg = case.config
    for key in ("variant", "builder_kind"):
        if cfg.get(key) in VARIANTS:
            return VARIANTS[cfg[key]]
    filename = (case.meta.get("checkpoint") or {}).get("file")
    for ckpt in registry.all_checkpoints():
        if ckpt.filename == filename:
            for config in VARIANTS.values():
                if config.checkpoint_id == ckpt.id:
                    return config
    words = str(cfg.get("generator", "")).split()
    if words and words[0] in VARIANTS:
        return VARIANTS[words[0]]
    raise ValueError(f"{case.id}: cannot tell which DeOldify generator the case uses")


def _network(case: Case) -> DeOldifyGenerator:
    net = DeOldifyGenerator(_config_for(case)).eval()
    shapes = case.keys or state_dict_shapes(net)
    net.load_state_dict(case.fixture(shapes), strict=True)
    return net


def _module_at(net: DeOldifyGenerator, where: tuple[int, int | None]) -> torch.nn.Module:
    layer, child = where
    module = net.layers[layer]
    return module[child] if child is not None else module  # type: ignore[index]


@handler("deoldify.generator", kinds=("network", "keys"))
def generator_case(case: Case) -> Outcome:
    """Keys (always) and, when the case has tensors, the forward output and every stored intermediate."""
    outcome = Outcome()
    net = DeOldifyGenerator(_config_for(case)).eval()
    if case.keys is not None:
        outcome.add(compare_keys("keys", state_dict_shapes(net), case.keys))
    io = case.io
    if not io:
        return outcome
    net.load_state_dict(case.fixture(case.keys or state_dict_shapes(net)), strict=True)
    args = (case.meta.get("forward") or {}).get("args") or ["input.x"]
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    wanted = [k[len("output."):] for k in io if k.startswith("output.") and k != "output.y"]
    for name in wanted:
        base = name.removesuffix(".first8ch")
        if base not in _INTERMEDIATES:
            outcome.add(Comparison(f"output.{name}", False, float("inf"), "-", "unknown intermediate"))
            continue

        def hook(_m: torch.nn.Module, _i: object, out: torch.Tensor, key: str = name) -> None:
            captured[key] = out.detach().clone()

        hooks.append(_module_at(net, _INTERMEDIATES[base]).register_forward_hook(hook))
    try:
        torch.manual_seed(0)
        with torch.no_grad():
            y = net(*[io[a] for a in args])
    finally:
        for h in hooks:
            h.remove()
    outcome.add(compare_tensors("output.y", y, io["output.y"], case.atol, case.rtol))
    for name, got in captured.items():
        if name.endswith(".first8ch"):
            got = got[:, :8]
        outcome.add(compare_tensors(f"output.{name}", got, io[f"output.{name}"], case.atol, case.rtol))
    return outcome


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


@handler("deoldify.image_colorizer", kinds=("pipeline",))
def image_colorizer_case(case: Case) -> Outcome:
    """The whole still-image path through :class:`pipelines.colorization.pipeline.Colorizer`."""
    cfg = case.config
    if cfg.get("watermarked"):
        raise NotImplementedError("watermarked=True needs DeOldify's watermark image, which is not reproduced")
    forward = case.meta.get("forward") or {}
    inputs = list((forward.get("inputs") or {"input.png": ""}).keys())
    render_factor = int(cfg["render_factor"])
    if "render_base" in cfg and int(cfg["render_base"]) != P.RENDER_BASE:
        raise ValueError(f"render_base {cfg['render_base']} differs from DeOldify's {P.RENDER_BASE}")
    post_process = bool(cfg.get("post_process", True))
    max_abs, mean_abs = float(case.meta["max_abs_diff"]), case.meta.get("mean_abs_diff")

    with Image.open(case.file(inputs[0])) as im:  # the original: PIL open + convert('RGB'), nothing else
        photo = np.asarray(im.convert("RGB")).copy()
    colorizer = P.Colorizer(_network(case), _config_for(case), torch.device("cpu"), precision="exact", overflow="wrap")
    squares: list[np.ndarray] = []
    render = colorizer.render

    def recording_render(grays: list[np.ndarray], rf: int) -> np.ndarray:
        out = render(grays, rf)
        squares.extend(out)
        return out

    colorizer.render = recording_render  # type: ignore[method-assign]  # keep the network output for the intermediates
    torch.manual_seed(0)
    result = colorizer.colorize_arrays([photo], render_factor, post_process)[0]

    outcome = Outcome()
    outputs = forward.get("outputs") or {"expected.png": ""}
    for name in outputs:
        outcome.add(compare_images(name, result, _as_rgb(load_image(case.file(name))), max_abs, mean_abs))

    intermediates = forward.get("intermediates") or {}
    if intermediates:
        size = P.render_size(render_factor)
        gray = P.model_input(photo, size)
        square = squares[0]
        computed = {
            "model_input.png": _as_rgb(gray),
            "model_output.png": square,
            "raw_color.png": P.resize_back(square, photo.shape[1], photo.shape[0]),
        }
        for name in intermediates:
            if name not in computed:
                outcome.add(Comparison(name, False, float("inf"), "-", "unknown intermediate"))
                continue
            expected = _as_rgb(load_image(case.file(name)))
            outcome.add(compare_images(name, computed[name], expected, max_abs, mean_abs))
    return outcome
