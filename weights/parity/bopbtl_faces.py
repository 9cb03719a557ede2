"""Parity handlers for BOPBTL stages 2 and 4 (face alignment, warp back and blend).

Both stages have no learned weights: stage 2 runs the real dlib detector and 68-point predictor,
stage 4 pastes the case's stand-in "enhanced" faces. Inputs, template, scale and tolerances are read
from each case.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from PIL import Image

from weights.parity.case import Case, Comparison, Outcome, compare_images, compare_tensors, load_image
from weights.parity.runner import handler


def _photo(case: Case) -> tuple[np.ndarray, str]:
    """The case's input photo as RGB uint8 (``Image.open(...).convert("RGB")``, as the original) and its stem."""
    path = case.file(case.meta["input"]["image"])
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy(), path.stem


def _template(config: dict[str, Any]) -> Any:
    from pipelines.restoration.faces import TEMPLATE_512

    value = config.get("template_512")
    if value is None:
        return TEMPLATE_512
    return json.loads(value) if isinstance(value, str) else value


def _face_size(config: dict[str, Any]) -> int:
    return int(config.get("out_size", config.get("face_size", 256)))


def _align(case: Case, image: np.ndarray) -> list:
    from pipelines.restoration.faces import TARGET_FACE_SCALE, align_faces

    cfg = case.config
    return align_faces(image, _face_size(cfg), float(cfg.get("target_face_scale", TARGET_FACE_SCALE)), _template(cfg))


def _exact(name: str, got: Any, expected: Any) -> Comparison:
    g, e = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if g.shape != e.shape:
        return Comparison(name, False, float("inf"), "exact", f"shape {g.shape} != {e.shape}")
    err = float(np.abs(g - e).max()) if g.size else 0.0
    return Comparison(name, err == 0.0, err, "exact")


def _png_tolerances(case: Case) -> tuple[float, float | None]:
    return float(case.meta.get("max_abs_diff", 0)), case.meta.get("mean_abs_diff")


@handler("bopbtl.stage2_face_detect_align", kinds=("pipeline",))
def stage2_face_align(case: Case) -> Outcome:
    """Compares what the case carries: the transforms file and/or the aligned face crops; the
    expected number of faces follows from them."""
    image, stem = _photo(case)
    faces = _align(case, image)
    transforms = case.named("expected", "transforms")
    expected = json.loads(transforms.read_text()) if transforms is not None and transforms.exists() else {"faces": []}
    crops = case.numbered("expected", "faces", stem=stem)
    out = Outcome()
    n_expected = max(len(expected["faces"]), max(crops, default=0))
    out.add(_exact("n_faces", len(faces), n_expected))
    atol = float(case.meta.get("transform_atol", 1e-6))
    max_abs, mean_abs = _png_tolerances(case)
    by_index = {f.index: f for f in faces}
    for exp in expected["faces"]:
        k = exp["index"]
        face = by_index.get(k)
        if face is None:
            out.add(Comparison(f"face{k}", False, float("inf"), "found", "face not detected"))
            continue
        out.add(_exact(f"face{k}.rect", face.rect, exp["rect_ltrb"]))
        out.add(_exact(f"face{k}.landmarks68", face.landmarks, exp["landmarks68_xy"]))
        out.add(_exact(f"face{k}.five_points", face.five_points, exp["five_points_xy"]))
        out.add(
            compare_tensors(f"face{k}.T", face.transform, np.array(exp["similarity_aligned_to_image_3x3"]), atol, 0.0)
        )
        out.add(
            compare_tensors(f"face{k}.T_inv", face.inverse, np.array(exp["similarity_image_to_aligned_3x3"]), atol, 0.0)
        )
        if "crop_file" in exp and k not in crops:
            crops[k] = case.file(exp["crop_file"])
    for k, path in crops.items():
        face = by_index.get(k)
        if face is None:
            out.add(Comparison(f"face{k}.crop", False, float("inf"), "found", "face not detected"))
            continue
        out.add(compare_images(f"face{k}.crop", face.crop, load_image(path), max_abs, mean_abs))
    if "template_points_xy_256" in expected and _face_size(case.config) == 256:
        from pipelines.restoration.faces import template_points

        got = template_points(256, float(case.config.get("target_face_scale", 1.3)), _template(case.config))
        out.add(compare_tensors("template", got, np.array(expected["template_points_xy_256"]), atol, 0.0))
    return out


@handler("bopbtl.stage4_warp_back_blend", kinds=("pipeline",))
def stage4_warp_back_blend(case: Case) -> Outcome:
    """The faces to paste are the case's enhanced-face files; every expected output present (masks
    in io, matched faces, the blended photo) is compared."""
    from skimage.util import img_as_ubyte

    from pipelines.restoration.faces import blend_faces

    image, stem = _photo(case)
    faces = _align(case, image)
    size = _face_size(case.config)
    enhanced_files = case.numbered("input", "enhanced_faces", stem=stem)
    out = Outcome()
    out.add(_exact("n_faces", len(faces), len(enhanced_files)))
    if [f.index for f in faces] != list(enhanced_files):
        return out
    enhanced = [load_image(enhanced_files[f.index])[..., :3] for f in faces]
    result = blend_faces(image, faces, enhanced, size)

    height, width = image.shape[:2]
    full = image.astype(np.float64)
    y0, y1, x0, x1 = result.region
    full[y0:y1, x0:x1] = result.blended

    max_abs, mean_abs = _png_tolerances(case)
    io = case.io
    matched = case.numbered("expected", "matched_faces", stem=stem)
    for trace in result.traces:
        key = f"output.face{trace.index}.mask_blur"
        if key in io:
            mask = np.zeros((height, width))
            a0, a1, b0, b1 = trace.window
            mask[a0:a1, b0:b1] = trace.mask_blur
            out.add(compare_tensors(key, mask, io[key], case.atol, case.rtol))
        if trace.index in matched:
            exp_matched = load_image(matched[trace.index])[..., :3]
            out.add(compare_images(f"face{trace.index}.matched", trace.matched, exp_matched, max_abs, mean_abs))
    if "output.blended_0_255" in io:
        out.add(
            compare_tensors(
                "output.blended_0_255", full.transpose(2, 0, 1), io["output.blended_0_255"], case.atol, case.rtol
            )
        )
    blended = case.named("expected", "blended")
    if blended is not None and blended.exists():
        final = img_as_ubyte(full / 255.0)
        out.add(compare_images("blended.png", final, load_image(blended)[..., :3], max_abs, mean_abs))
    return out
