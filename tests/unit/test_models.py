"""The paper's networks, pinned: layer kinds, widths, blocks, sizes, receptive fields."""

import pytest
import torch
from torch import nn

from gapfill.errors import InputError
from gapfill.models import (
    METHODS,
    PatchDiscriminator,
    build_generator,
    conv_flops,
    gan_loss,
    get_method,
    masked_l1,
    parameter_count,
    patch_receptive_field,
    receptive_field,
)
from gapfill.models.generator import Generator, GeneratorConfig, ResidualBlock


def _convs(module: nn.Module) -> list[tuple[int, int, int]]:
    return [
        (m.in_channels, m.out_channels, m.kernel_size[0])
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
    ]


def test_paper_generator_follows_fig_2():
    g = build_generator("mtcgan", "paper")
    convs = _convs(g)
    assert convs[:3] == [(8, 64, 7), (64, 128, 3), (128, 256, 3)]
    assert convs[3:21] == [(256, 256, 3)] * 18  # 9 blocks x 2 convs
    assert convs[21:] == [(256, 128, 3), (128, 64, 3), (64, 4, 7)]
    assert all(
        m.stride == (1, 1) and m.padding_mode == "zeros"
        for m in g.modules()
        if isinstance(m, nn.Conv2d)
    )
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in g.modules())
    blocks = [m for m in g.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 9
    kinds = [type(m).__name__ for m in blocks[0].branch]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout", "Conv2d", "ReLU"]
    assert blocks[0].branch[3].p == 0.5
    for stage in (g.encoder, g.decoder[:2]):
        for layer in stage:
            assert [type(m).__name__ for m in layer] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert isinstance(g.decoder[-1], nn.Tanh)


def test_paper_generator_figures():
    g = build_generator("mtcgan", "paper")
    # Reported in the model card and the notes: 11.4 M parameters, 1.49 TFLOP per 256^2
    # patch, 57 px receptive field (the fill halo is 28 px).
    assert parameter_count(g) == 11_402_884
    assert conv_flops(g, (1, 8, 256, 256)) == pytest.approx(1.493e12, rel=1e-3)
    assert receptive_field(g) == 57
    assert len(_convs(build_generator("cnn", "paper"))) == 24
    assert _convs(build_generator("cnn", "paper"))[0] == (2, 64, 7)


def test_johnson_variant_puts_bn_not_relu_at_the_end_of_the_block():
    g = build_generator("mtcnn", "test-tiny", block="johnson")
    block = next(m for m in g.modules() if isinstance(m, ResidualBlock))
    assert type(block.branch[-1]).__name__ == "BatchNorm2d"


def test_output_range_and_size_any_input():
    g = build_generator("mtcgan", "test-tiny").eval()
    for h, w in ((37, 53), (64, 64)):
        y = g(torch.randn(2, 8, h, w) * 10)
        assert y.shape == (2, 4, h, w)
        assert y.min() >= -1 and y.max() <= 1


def test_eval_output_does_not_depend_on_tiling_with_the_receptive_field_halo():
    torch.manual_seed(0)
    g = build_generator("mtcgan", "test-tiny")
    g.train()
    for _ in range(3):  # give BatchNorm running stats that are not the identity
        g(torch.randn(4, 8, 32, 32))
    g.eval()
    x = torch.randn(1, 8, 80, 80)
    full = g(x)
    halo = receptive_field(g) // 2
    crop = g(x[:, :, 20 - halo : 60 + halo, 20 - halo : 60 + halo])[:, :, halo:-halo, halo:-halo]
    torch.testing.assert_close(crop, full[:, :, 20:60, 20:60], atol=1e-5, rtol=0)
    short = halo - 2
    bad = g(x[:, :, 20 - short : 60 + short, 20 - short : 60 + short])[
        :, :, short:-short, short:-short
    ]
    assert not torch.allclose(bad, full[:, :, 20:60, 20:60], atol=1e-5)


def test_patchgan_is_70_by_70_and_conditional():
    d = PatchDiscriminator(8 + 4)
    assert patch_receptive_field(d) == 70
    out = d(torch.randn(1, 8, 256, 256), torch.randn(1, 4, 256, 256))
    assert out.shape == (1, 1, 30, 30)
    widths = [m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1]


def test_methods_and_losses():
    assert {n: (m.task, m.adversarial) for n, m in METHODS.items()} == {
        "cnn": ("A", False),
        "cgan": ("A", True),
        "mtcnn": ("B", False),
        "mtcgan": ("B", True),
    }
    assert get_method("mtcgan").channels == (
        "S1_t2:VV",
        "S1_t2:VH",
        "S1_t1:VV",
        "S1_t1:VH",
        "O1:B02",
        "O1:B03",
        "O1:B04",
        "O1:B08",
    )
    assert get_method("cgan").l1_weight == 100
    with pytest.raises(InputError, match="unknown method"):
        get_method("unet")
    with pytest.raises(InputError, match="unknown preset"):
        build_generator("cnn", "huge")
    pred, target = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
    target[..., 0, 0] = 5.0
    mask = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    mask[..., 0, 0] = False
    assert masked_l1(pred, target, mask).item() == pytest.approx(1.0)
    assert gan_loss(torch.zeros(1, 1, 3, 3), real=True).item() == pytest.approx(0.6931, abs=1e-4)
    assert gan_loss(torch.full((1, 1, 3, 3), 20.0), real=True).item() < 1e-6


def test_model_card_round_trip_and_bad_run_dirs(tmp_path):
    from gapfill.models.card import ModelCard, load_model, save_model, weights_sha256

    g = build_generator("mtcnn", "test-tiny")
    card = ModelCard(
        method="mtcnn",
        task="B",
        preset="test-tiny",
        generator=g.cfg,
        input_channels=get_method("mtcnn").channels,
        receptive_field_px=receptive_field(g),
    )
    save_model(tmp_path / "run", g, card)
    loaded, card2 = load_model(tmp_path / "run")
    assert card2 == card and not loaded.training
    for k, v in g.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert len(weights_sha256(tmp_path / "run" / "model.pt")) == 64
    with pytest.raises(InputError, match="no model.json"):
        load_model(tmp_path)
    (tmp_path / "run" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot be loaded"):
        load_model(tmp_path / "run")
    (tmp_path / "run" / "model.json").write_text('{"card_version": "1"}')
    with pytest.raises(InputError, match="not a model card"):
        load_model(tmp_path / "run")


def test_train_step_updates_d_from_its_own_loss_only():
    """G's adversarial term runs D frozen: D's gradients are those of the D loss alone."""
    import copy

    from gapfill.models import gan_loss, masked_l1, train_step

    torch.manual_seed(0)
    g, d = build_generator("mtcgan", "test-tiny"), PatchDiscriminator(12)
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    x, y = torch.randn(1, 8, 32, 32), torch.rand(1, 4, 32, 32) * 2 - 1
    m = torch.rand(1, 1, 32, 32) > 0.3
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    torch.manual_seed(1)  # the same dropout draws in both generator passes
    losses = train_step(g, d, opt_g, opt_d, (x, y, m), 100.0)

    torch.manual_seed(1)
    fake = g_ref(x)
    loss_d = 0.5 * (gan_loss(d_ref(x, y), True) + gan_loss(d_ref(x, fake.detach()), False))
    loss_d.backward()
    for (name, p), q in zip(d.named_parameters(), d_ref.parameters(), strict=True):
        assert p.requires_grad, name  # unfrozen again for the next D step
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    assert losses["loss_d"].item() == pytest.approx(loss_d.item(), rel=1e-5)
    assert losses["loss_l1"].item() == pytest.approx(masked_l1(fake, y, m).item(), rel=1e-5)
    assert losses["loss_g"] > 100.0 * losses["loss_l1"]  # plus D's BCE on the fake
    assert all(p.grad is not None for p in g.parameters())


def test_the_shipped_paper_training_config_validates():
    """configs/train-paper.yaml is what the README points users at: it must load."""
    from pathlib import Path

    from gapfill.train import load_train_config

    path = Path(__file__).resolve().parents[2] / "configs" / "train-paper.yaml"
    cfg = load_train_config(path, epochs=5)
    assert (cfg.method, cfg.preset, cfg.data.patch, cfg.batch_size) == ("mtcgan", "paper", 256, 1)
    assert cfg.epochs == 5 and cfg.lr == 2e-4 and cfg.betas == (0.5, 0.999)
    assert cfg.checkpoints and cfg.checkpoints.startswith("s3://")


@pytest.mark.parametrize("block", ["paper", "johnson"])
def test_every_residual_branch_of_a_norm_free_net_learns(block):
    """The CPU presets drop normalisation and start each residual branch near zero. A
    `paper` branch ends in a ReLU: had its last conv started at exactly zero, that ReLU
    would pass no gradient and the branch (and its dropout) would stay dead forever."""
    torch.manual_seed(0)
    g = Generator(
        GeneratorConfig(widths=(8, 16, 16), kernels=(3, 3, 3), blocks=2, norm="none", block=block)
    )
    lasts = [[m for m in b.modules() if isinstance(m, nn.Conv2d)][-1] for b in g.blocks]
    before = [last.weight.detach().clone() for last in lasts]
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    x, y = torch.rand(2, 8, 24, 24) * 2 - 1, torch.rand(2, 4, 24, 24) * 2 - 1
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.l1_loss(g(x), y).backward()
        opt.step()
    for last, start in zip(lasts, before, strict=True):
        assert not torch.equal(last.weight, start)
    g.eval()
    for m in g.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    with torch.no_grad():
        assert not torch.equal(g(x), g(x))  # dropout now changes the output
