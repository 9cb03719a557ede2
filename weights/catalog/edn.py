"""Dance (Everybody Dance Now): the one published file it needs, OpenPose's COCO body network.

No pretrained Everybody Dance Now generator was ever published (the GAN is trained per target
video), so the only checkpoint is ``body_pose_model.pth``: CMU OpenPose's COCO body model
(``pose_iter_440000.caffemodel``) converted to PyTorch by Hzzone/pytorch-openpose. Its keys carry no
``modelX_Y.`` block prefix; :func:`pipelines.dance.openpose.openpose_key_map` maps them.

Hzzone's README links a Dropbox and a Google Drive *folder* (pages, not direct files; fetch the file
from them by hand). The Hugging Face copies below are byte-identical uploads (same LFS sha256 and
size in lllyasviel/Annotators, lllyasviel/ControlNet and TencentARC/T2I-Adapter).
"""

from __future__ import annotations

from weights.registry import Checkpoint, Component, Source

CHECKPOINTS: list[Checkpoint] = [
    Checkpoint(
        id="edn/openpose_body",
        family="edn",
        filename="body_pose_model.pth",
        description=(
            "OpenPose COCO body network (VGG-19 front end + 6 two-branch stages: 38 part-affinity fields, "
            "19 heatmaps) converted to PyTorch by Hzzone/pytorch-openpose. Finds the 18 COCO body keypoints "
            "that the Dance tab turns into Everybody Dance Now stick-figure labels (about 209 MB)."
        ),
        licence=(
            "CMU OpenPose licence: free for academic or non-profit non-commercial research only; commercial use "
            "needs a licence from Carnegie Mellon University (see the OpenPose LICENSE). The pytorch-openpose "
            "conversion code is MIT-licensed, the weights keep CMU's terms."
        ),
        components=(
            Component(
                name="body",
                builder="pipelines.dance.openpose:build_body_pose_model",
                path=(),
                key_map="pipelines.dance.openpose:openpose_key_map",
            ),
        ),
        sources=(
            Source(
                hf_repo="lllyasviel/Annotators",
                hf_file="body_pose_model.pth",
                revision="733558ac5d0b04bf31da07f9a4e977546a66fb97",
                note="ControlNet annotator mirror, pinned to the commit that added the file",
            ),
            Source(hf_repo="lllyasviel/ControlNet", hf_file="annotator/ckpts/body_pose_model.pth", note="ControlNet v1.0 annotator copy"),
            Source(
                url="https://www.dropbox.com/sh/7xbup2qsn7vvjxo/AABWFksdlgOMXR_r5v3RwKRYa?dl=0",
                note="Hzzone README (Dropbox folder page: download body_pose_model.pth by hand)",
            ),
            Source(
                url="https://drive.google.com/drive/folders/1JsvI4M4ZTg98fmnCZLFM-3TeovnCRElG?usp=sharing",
                note="Hzzone README (Google Drive folder page: download body_pose_model.pth by hand)",
            ),
        ),
        sha256="25a948c16078b0f08e236bda51a385d855ef4c153598947c28c0d47ed94bb746",
        size=209267595,
        homepage="https://github.com/Hzzone/pytorch-openpose",
        notes="Original model: https://github.com/CMU-Perceptual-Computing-Lab/openpose (COCO body, 18 keypoints).",
    ),
    Checkpoint(
        id="edn/vgg19",
        family="edn",
        filename="vgg19-dcbb9e9d.pth",
        description=(
            "torchvision's ImageNet VGG19, used only by Dance training for the pix2pixHD perceptual loss "
            "(relu1_1..relu5_1 features). Without it training runs with GAN + feature matching and says so."
        ),
        licence="BSD-3-Clause (torchvision); VGG weights by the Oxford Visual Geometry Group, CC BY 4.0",
        components=(Component(name="vgg19", builder="torchvision.models:vgg19", path=()),),
        sources=(Source(url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", note="torchvision model zoo"),),
        homepage="https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg19.html",
        notes="torchvision names the file after the first 8 hex digits of its sha256 (dcbb9e9d); the full hash is not published here.",
    ),
]
