"""Stages 2-4 of the restore pipeline: alignment, histogram matching, warp back and blend.

The reference cases themselves (stage 2 with real dlib, stage 4) run in tests/test_parity.py."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from skimage.transform import SimilarityTransform, warp
from skimage.util import img_as_ubyte

from pipelines.restoration import faces


def _original_lookup(src_cdf: np.ndarray, ref_cdf: np.ndarray) -> np.ndarray:
    """The original's double loop, written out to check the vectorised version against it."""
    table = np.zeros(256)
    value = 0
    for s in range(256):
        for r in range(256):
            if ref_cdf[r] >= src_cdf[s]:
                value = r
                break
        table[s] = value
    return table


def test_histogram_matching_equals_the_original_lookup() -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(0, 120, (64, 64, 3), dtype=np.uint8)
    ref = (rng.beta(2, 5, (64, 64, 3)) * 255).astype(np.uint8)
    got = faces.match_histograms(src, ref)
    for c in range(3):
        src_cdf = np.cumsum(np.histogram(src[..., c], 256, [0, 256])[0])
        ref_cdf = np.cumsum(np.histogram(ref[..., c], 256, [0, 256])[0])
        table = _original_lookup(src_cdf / src_cdf.max(), ref_cdf / ref_cdf.max())
        np.testing.assert_array_equal(got[..., c], table[src[..., c]].astype(np.uint8))
    # matching moves the source's distribution onto the reference's
    assert abs(float(got.mean()) - float(ref.mean())) < abs(float(src.mean()) - float(ref.mean())) / 4


def test_five_points_truncate_eye_centres() -> None:
    lm = np.zeros((68, 2))
    lm[36], lm[39] = (10, 21), (13, 24)  # means 11.5, 22.5 -> 11, 22
    lm[42], lm[45] = (30, 20), (33, 21)  # 31.5, 20.5 -> 31, 20
    lm[30], lm[48], lm[54] = (20, 30), (12, 40), (28, 41)
    np.testing.assert_array_equal(faces.five_points(lm), [[11, 22], [31, 20], [20, 30], [12, 40], [28, 41]])


def test_template_matches_the_documented_points() -> None:
    expected = [[89, 108.5], [167, 108.5], [128, 147.5], [104.6, 195.86], [151.4, 195.86]]
    np.testing.assert_allclose(faces.template_points(256), expected, atol=1e-4)
    np.testing.assert_allclose(faces.template_points(512), np.array(expected) * 2, atol=2e-4)


def _face_on(image: np.ndarray, size: int) -> faces.AlignedFace:
    """A face at a rotated, scaled place inside ``image`` (no dlib needed)."""
    tform = SimilarityTransform(scale=0.55, rotation=0.3, translation=(230.0, 60.0))
    crop = img_as_ubyte(warp(image, tform.params, output_shape=(size, size, 3)))
    return faces.AlignedFace(1, (0, 0, 1, 1), np.zeros((68, 2)), np.zeros((5, 2), np.int64), tform.params, crop)


def _full_size_original(image: np.ndarray, face: faces.AlignedFace, new_face: np.ndarray) -> np.ndarray:
    """Stage 4 for one face exactly as the original writes it: every warp at full size."""
    import cv2

    tform = SimilarityTransform(matrix=face.transform)
    aligned = warp(image, tform, output_shape=(256, 256, 3), preserve_range=True)
    fmask = warp(np.ones_like(image), tform, output_shape=(256, 256, 3), order=0, preserve_range=True).astype(float)
    matched = faces.match_histograms(new_face, aligned.astype(np.uint8))
    h, w = image.shape[:2]
    back = warp(matched, tform.inverse, output_shape=(h, w, 3), order=3, preserve_range=True)
    bmask = warp(fmask, tform.inverse, output_shape=(h, w, 3), order=0, preserve_range=True).astype(float) * 255
    bmask = cv2.GaussianBlur(cv2.erode(bmask, np.ones((9, 9), np.uint8), iterations=3), (25, 25), 0) / 255
    out = np.clip((back * bmask + (1 - bmask) * image) / 255.0, 0, 1) * 255.0
    return img_as_ubyte(out / 255.0)


def test_windowed_blend_equals_full_size_computation() -> None:
    image = skimage.data.astronaut()
    face = _face_on(image, 256)
    new_face = 255 - face.crop  # anything different from the crop
    got = faces.paste_faces(image, [face], [new_face])
    expected = _full_size_original(image, face, new_face)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert (got != expected).mean() < 1e-4
    changed = np.any(got != image, axis=2)
    ys, xs = np.nonzero(changed)
    # only the face's neighbourhood changes, and it does change
    assert changed.sum() > 5000 and 150 < xs.mean() < 400 and 20 < ys.mean() < 300


def test_crop_window_equals_full_size_warp() -> None:
    image = skimage.data.astronaut()
    face = _face_on(image, 256)
    full = warp(image, face.transform, output_shape=(256, 256, 3))
    got = faces.warp_crop(image, face.transform, 256, preserve_range=False)
    np.testing.assert_allclose(got, full, atol=1e-9)


def test_no_face_leaves_the_photo_unchanged() -> None:
    flat = np.full((120, 160, 3), 128, np.uint8)
    assert faces.align_faces(flat) == []
    np.testing.assert_array_equal(faces.paste_faces(flat, [], []), flat)


def test_wrong_enhanced_face_size_is_refused() -> None:
    image = skimage.data.astronaut()
    face = _face_on(image, 256)
    with pytest.raises(ValueError, match="uint8"):
        faces.blend_faces(image, [face], [np.zeros((128, 128, 3), np.uint8)])


def test_stage3_tensor_round_trip_is_lossless() -> None:
    crop = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    x = faces.face_to_tensor(crop, 256)
    assert x.shape == (1, 3, 256, 256) and float(x.min()) >= -1 and float(x.max()) <= 1
    np.testing.assert_array_equal(faces.tensor_to_face(x), crop)
    assert faces.face_to_tensor(crop, 512).shape == (1, 3, 512, 512)
