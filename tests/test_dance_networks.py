"""Dance GAN networks and losses: layouts, scale order, the feedback loop, the face residual and
the loss weights of the original. (Bit parity with the original code is checked by the reference
cases in ``test_parity.py``; these tests pin down behaviour the cases do not cover.)"""

from __future__ import annotations

import json

import pytest
import torch

from pipelines.dance import losses
from pipelines.dance.networks import (
    GeneratorConfig,
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    batch_norm,
    build_face_discriminator,
    build_face_generator,
    build_global_generator,
    build_local_enhancer,
    build_multiscale_discriminator,
    check_frame_size,
)
from pipelines.dance.transfer import clamp_box, generate_sequence, generate_step, label_to_tensor, tensor_to_uint8


def _keys(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    ("case", "build"),
    [
        ("pose2vid_global_G", build_global_generator),
        ("pose2vid_local_G", build_local_enhancer),
        ("face_G", build_face_generator),
        ("multiscale_D", build_multiscale_discriminator),
        ("face_D", build_face_discriminator),
    ],
)
def test_published_builders_have_the_original_keys(reference_dir, case, build) -> None:
    expected = json.loads((reference_dir / "edn" / case / "keys.json").read_text())
    assert _keys(build()) == expected


def test_global_stage_discriminator_has_two_scales_and_full_resolution_uses_the_last() -> None:
    torch.manual_seed(0)
    net = MultiscaleDiscriminator(12, ndf=8, n_layers=3, num_D=2).eval()
    assert {k.split("_")[0] for k in net.state_dict()} == {"scale0", "scale1"}
    x = torch.rand(1, 12, 32, 64)
    with torch.no_grad():
        before = net(x)
        net.scale1_layer4[0].bias.add_(1.0)  # output 0 (full resolution) must move, output 1 not
        after = net(x)
    assert len(before) == 2 and all(len(scale) == 5 for scale in before)
    assert torch.allclose(after[0][-1], before[0][-1] + 1.0, atol=1e-6)
    assert torch.equal(after[1][-1], before[1][-1])
    assert before[0][-1].shape[-1] > before[1][-1].shape[-1]


def test_face_discriminator_is_batchnorm_with_prefix() -> None:
    net = NLayerDiscriminator(6, ndf=8, n_layers=3, norm=batch_norm, prefix="face")
    assert all(k.startswith("facemodel.") for k in net.state_dict())
    assert any(k.endswith("running_mean") for k in net.state_dict())
    assert net(torch.rand(2, 6, 32, 32)).shape[:2] == (2, 1)


def test_forward_and_forward_stages_agree() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 6, 32, 64)
    g = GlobalGenerator(6, 3, ngf=8, n_downsampling=3, n_blocks=2).eval()
    l = LocalEnhancer(6, 3, ngf=4, n_downsample_global=3, n_blocks_global=2, n_blocks_local=1).eval()
    with torch.no_grad():
        stages = g.forward_stages(x)
        assert torch.equal(stages["y"], g(x))
        assert stages["stage.encoder"].shape == (1, 64, 4, 8)
        assert torch.equal(l.forward_stages(x)["y"], l(x))
    assert l(x).shape == (1, 3, 32, 64) and g.stride == 8 and l.stride == 16


def test_generator_config_round_trip_and_size_check() -> None:
    cfg = GeneratorConfig("local", ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=1)
    assert GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert isinstance(cfg.build(), LocalEnhancer) and cfg.stride == 8
    check_frame_size(64, 128, 32)
    with pytest.raises(ValueError, match="multiple of 32"):
        check_frame_size(64, 100, 32)


def test_feedback_loop_feeds_each_output_back() -> None:
    torch.manual_seed(0)
    g = GlobalGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1).eval()
    labels = [torch.rand(1, 3, 16, 32) for _ in range(3)]
    with torch.no_grad():
        frames = [s.frame for s in generate_sequence(g, None, labels)]
        assert torch.equal(frames[0], g(torch.cat((labels[0], torch.zeros_like(labels[0])), 1)))
        assert torch.equal(frames[2], g(torch.cat((labels[2], frames[1]), 1)))
        assert not torch.equal(frames[2], g(torch.cat((labels[2], torch.zeros_like(labels[2])), 1)))


class _ConstantResidual(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 6
        return torch.full_like(x[:, :3], 0.25)


def test_face_residual_is_added_inside_the_box_only() -> None:
    g = GlobalGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1).eval()
    label = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        plain = generate_step(g, None, label, torch.zeros_like(label), None).frame
        step = generate_step(g, _ConstantResidual(), label, torch.zeros_like(label), (4, 20, 8, 24))
    inside = torch.zeros_like(plain, dtype=torch.bool)
    inside[:, :, 4:20, 8:24] = True
    assert torch.allclose(step.frame[inside], plain[inside] + 0.25)
    assert torch.equal(step.frame[~inside], plain[~inside])
    assert torch.equal(step.initial_face, plain[:, :, 4:20, 8:24])
    assert clamp_box((-10, 6, 60, 80), 32, 64) is None  # too little of the box is inside the frame
    assert clamp_box((-4, 12, 50, 66), 32, 64) == (0, 12, 50, 64)


def test_tensor2im_truncates_like_the_original() -> None:
    y = torch.tensor([-1.5, -1.0, 0.0, 0.999, 2.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert tensor_to_uint8(y)[0, :, 0].tolist() == [0, 0, 127, 254, 255]
    label = torch.randint(0, 256, (4, 6, 3), dtype=torch.uint8).numpy()
    assert torch.allclose(label_to_tensor(label)[0].permute(1, 2, 0) * 255, torch.from_numpy(label).float())


def test_lsgan_and_feature_matching_weights() -> None:
    n_layers, num_d = 3, 2
    fake = [[torch.ones(1, 2, 4, 4) for _ in range(n_layers + 2)] for _ in range(num_d)]
    real = [[torch.zeros(1, 2, 4, 4) for _ in range(n_layers + 2)] for _ in range(num_d)]
    # per scale: 4 feature layers x L1 of 1 x 4/(3+1) x 1/num_D, times lambda 10, summed over 2 scales
    assert float(losses.feature_matching_loss(fake, real, n_layers, 10.0)) == pytest.approx(40.0)
    assert float(losses.lsgan_loss(fake, True)) == 0.0
    assert float(losses.lsgan_loss(fake, False)) == pytest.approx(2.0)  # MSE 1 per scale, 2 scales


def test_vgg_loss_is_off_with_a_reason_when_weights_are_absent(weights_dir) -> None:
    vgg, message = losses.load_vgg19(torch.device("cpu"))
    assert vgg is None and "OFF" in message


def test_vgg_feature_slices() -> None:
    vgg = losses.VGG19Features()
    assert len(vgg.features) == 30 and "features.28.weight" in vgg.state_dict()
    feats = vgg(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
