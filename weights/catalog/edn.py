"""Dance (Everybody Dance Now): OpenPose's COCO body network, and the optional training extras.

No pretrained Everybody Dance Now generator was ever published (the GAN is trained per target
video), so the one checkpoint it needs is ``body_pose_model.pth``: CMU OpenPose's COCO body model
(``pose_iter_440000.caffemodel``) converted to PyTorch by Hzzone/pytorch-openpose. Its keys carry no
``modelX_Y.`` block prefix; :func:`pipelines.dance.openpose.openpose_key_map` maps them.

Hzzone's README links a Dropbox and a Google Drive *folder* (pages, not direct files; fetch the file
from them by hand). The Hugging Face copies below are byte-identical uploads (same LFS sha256 and
size in lllyasviel/Annotators, lllyasviel/ControlNet and TencentARC/T2I-Adapter).

The hands of the labels come from ``hand_pose_model.pth``, the hand network of the same
conversion, licence and mirrors (optional: without it the labels carry body and face).

Optional: torchvision's VGG19 (the perceptual training loss) and LPIPS v0.1 (linear layers +
torchvision AlexNet or VGG16) for the held-out quality figure of a trained target.
"""

from __future__ import annotations

from weights.registry import Checkpoint, Component, Source

TAB_ORDER = 4  # position of this family in listings (the app's tab order)

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
        id="edn/openpose_hand",
        family="edn",
        filename="hand_pose_model.pth",
        description=(
            "OpenPose hand network (VGG-19 front end + 6 stages, 21 keypoints + background) converted to PyTorch "
            "by Hzzone/pytorch-openpose. Finds the 21 points of each hand, in a box placed from the body's arm, "
            "that Everybody Dance Now's labels draw (about 147 MB). Without it, labels carry body and face only."
        ),
        licence=(
            "CMU OpenPose licence: free for academic or non-profit non-commercial research only; commercial use "
            "needs a licence from Carnegie Mellon University (see the OpenPose LICENSE). The pytorch-openpose "
            "conversion code is MIT-licensed, the weights keep CMU's terms."
        ),
        components=(
            Component(
                name="hand",
                builder="pipelines.dance.hands:build_hand_pose_model",
                path=(),
                key_map="pipelines.dance.hands:hand_key_map",
            ),
        ),
        sources=(
            Source(
                hf_repo="lllyasviel/Annotators",
                hf_file="hand_pose_model.pth",
                revision="982e7edaec38759d914a963c48c4726685de7d96",
                note="ControlNet annotator mirror (the body file's mirror), pinned",
            ),
            Source(hf_repo="lllyasviel/ControlNet", hf_file="annotator/ckpts/hand_pose_model.pth", note="ControlNet v1.0 annotator copy"),
            Source(
                url="https://www.dropbox.com/sh/7xbup2qsn7vvjxo/AABWFksdlgOMXR_r5v3RwKRYa?dl=0",
                note="Hzzone README (Dropbox folder page: download hand_pose_model.pth by hand)",
            ),
            Source(
                url="https://drive.google.com/drive/folders/1JsvI4M4ZTg98fmnCZLFM-3TeovnCRElG?usp=sharing",
                note="Hzzone README (Google Drive folder page: download hand_pose_model.pth by hand)",
            ),
        ),
        sha256="b76b00d1750901abd07b9f9d8c98cc3385b8fe834a26d4b4f0aad439e75fc600",
        size=147341049,
        homepage="https://github.com/Hzzone/pytorch-openpose",
        notes=(
            "Original model: CMU OpenPose hand (pose_iter_102000.caffemodel). sha256 and size are those of the "
            "Hugging Face LFS pointer of lllyasviel/Annotators' hand_pose_model.pth."
        ),
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
        sha256="dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
        size=574673361,
        homepage="https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg19.html",
        notes="torchvision names the file after the first 8 hex digits of its sha256 (dcbb9e9d), which torch.hub checks.",
    ),
]

# LPIPS v0.1 (the held-out quality of a trained target): the published linear layers plus the
# torchvision ImageNet backbone they were calibrated on. sha256/size of the linear files are those
# of the files shipped in the lpips 0.1.4 wheel (the repository's lpips/weights/v0.1/ files).
_LPIPS_LICENCE = "BSD-2-Clause (richzhang/PerceptualSimilarity, LPIPS v0.1 linear layers)"
_LPIPS_WHEEL = (
    "https://files.pythonhosted.org/packages/9b/13/1df50c7925d9d2746702719f40e864f51ed66f307b20ad32392f1ad2bb87/"
    "lpips-0.1.4-py3-none-any.whl"
)


def _lpips_linear(net: str, sha256: str, size: int, backbone: str) -> Checkpoint:
    return Checkpoint(
        id=f"edn/lpips_{net}",
        family="edn",
        filename=f"{net}.pth",
        description=(
            f"LPIPS v0.1 linear calibration layers for the {backbone} backbone (5 bias-free 1x1 convolutions). "
            "Dance training reports the LPIPS of held-out frames with it (lower is better)."
        ),
        licence=_LPIPS_LICENCE,
        components=(Component(name="linear", builder=f"pipelines.common.lpips:build_{net}_linear", path=()),),
        sources=(
            Source(
                url=f"https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth",
                note="the authors' repository",
            ),
            Source(url=_LPIPS_WHEEL, member=f"lpips/weights/v0.1/{net}.pth", note="inside the lpips 0.1.4 wheel on PyPI"),
        ),
        sha256=sha256,
        size=size,
        homepage="https://github.com/richzhang/PerceptualSimilarity",
        notes="Zhang et al., The Unreasonable Effectiveness of Deep Features as a Perceptual Metric (CVPR 2018).",
    )


CHECKPOINTS += [
    _lpips_linear("alex", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", 6009, "AlexNet"),
    Checkpoint(
        id="edn/alexnet",
        family="edn",
        filename="alexnet-owt-7be5be79.pth",
        description="torchvision's ImageNet AlexNet; its convolutional features are the backbone of LPIPS (alex).",
        licence="BSD-3-Clause (torchvision)",
        components=(Component(name="alexnet", builder="torchvision.models:alexnet", path=()),),
        sources=(Source(url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", note="torchvision model zoo"),),
        sha256_prefix="7be5be79",
        homepage="https://pytorch.org/vision/stable/models/generated/torchvision.models.alexnet.html",
        notes="About 233 MB; torchvision names the file after the first 8 hex digits of its sha256 (7be5be79).",
    ),
    _lpips_linear("vgg", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", 7289, "VGG16"),
    Checkpoint(
        id="edn/vgg16",
        family="edn",
        filename="vgg16-397923af.pth",
        description="torchvision's ImageNet VGG16; its convolutional features are the backbone of LPIPS (vgg).",
        licence="BSD-3-Clause (torchvision); VGG weights by the Oxford Visual Geometry Group, CC BY 4.0",
        components=(Component(name="vgg16", builder="torchvision.models:vgg16", path=()),),
        sources=(Source(url="https://download.pytorch.org/models/vgg16-397923af.pth", note="torchvision model zoo"),),
        sha256_prefix="397923af",
        homepage="https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg16.html",
        notes="About 528 MB; torchvision names the file after the first 8 hex digits of its sha256 (397923af).",
    ),
]
