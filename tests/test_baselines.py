"""SIREN, SPDER and RFF-MLP baselines: they run through neofield's own fit and render, and fit for real."""

import math
from pathlib import Path

import pytest
import torch

from neofield.codec import measure
from neofield.fields.baselines import RFFNet, RFFNetConfig, Siren, SirenConfig, Spder
from neofield.fields.encodings import rff_frequencies
from neofield.fit import FitConfig, fit
from neofield.media import Selection, read_media
from neofield.signal import Signal

BACH = Path(__file__).resolve().parent.parent / "examples" / "bach_2s.flac"


@pytest.mark.parametrize("make", [lambda i, o: Siren(SirenConfig(i, o)), lambda i, o: RFFNet(RFFNetConfig(i, o)),
                                  lambda i, o: Spder(SirenConfig(i, o))])
@pytest.mark.parametrize("inputs,outputs", [(1, 1), (3, 3), (3, 9)])
def test_shapes_and_parameter_split(make, inputs, outputs):
    field = make(inputs, outputs)
    out = field(torch.rand(7, inputs) * 2 - 1)
    assert out.shape == (7, outputs) and out.dtype == torch.float32
    n = field.num_parameters()
    assert n["latents"] == 0 and n["backbone"] == n["total"] == sum(p.numel() for p in field.parameters())
    assert field.config.out_features == outputs


def test_default_sizes_match_each_other_and_the_paper_siren():
    # SIREN 5 x 256 on audio is the NeoMLP paper's baseline; the RFF-MLP defaults are sized to match it
    siren, rff = Siren(SirenConfig(1, 1)), RFFNet(RFFNetConfig(1, 1))
    assert siren.num_parameters()["total"] == 198_145
    assert abs(rff.num_parameters()["total"] / siren.num_parameters()["total"] - 1) < 0.01


def test_siren_init_follows_the_paper():
    torch.manual_seed(0)
    c = SirenConfig(in_features=3, out_features=3, width=256, layers=5)
    siren = Siren(c)
    first = siren.hidden[0].weight
    assert first.abs().max() <= 1 / 3 and first.abs().max() > 0.95 / 3  # U(-1/in, 1/in), filled out
    for layer in [*siren.hidden[1:], siren.out]:
        bound = math.sqrt(6 / layer.in_features) / c.w0
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.95 * bound
        assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound  # uniform, not a narrower law


def test_siren_init_keeps_activations_in_range_at_depth():
    # The point of the init: pre-activations stay O(1) however deep the net. PyTorch's default
    # init under w0 = 30 would make them ~10x larger, so every sine would alias.
    torch.manual_seed(0)
    siren = Siren(SirenConfig(in_features=3, out_features=3, width=256, layers=10))
    x = torch.rand(4096, 3) * 2 - 1
    with torch.no_grad():
        for layer in siren.hidden:
            pre = siren.config.w0 * layer(x)
            x = torch.sin(pre)
    assert 0.7 < pre.std().item() < 2.5, pre.std().item()


def test_rff_bank_is_regenerated_from_its_seed():
    c = RFFNetConfig(in_features=3, out_features=3, rff_dim=64, rff_sigma=(1.0, 2.0, 40.0), seed=7)
    torch.manual_seed(0)
    a = RFFNet(c)
    torch.manual_seed(1)
    b = RFFNet(c)
    assert torch.equal(a.freqs, b.freqs)
    assert torch.equal(a.freqs, rff_frequencies(3, 64, (1.0, 2.0, 40.0), 7).float())
    assert "freqs" not in a.state_dict()  # never stored: the seed is enough
    b.load_state_dict(a.state_dict())
    x = torch.rand(100, 3) * 2 - 1
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a.freqs, RFFNet(RFFNetConfig(3, 3, rff_dim=64, rff_sigma=(1.0, 2.0, 40.0), seed=8)).freqs)
    stds = a.freqs.std(dim=1)
    assert stds[0] < stds[1] < stds[2] and stds[2] > 10 * stds[0]  # each input's own sigma


def test_rff_phases_stay_float32_under_bfloat16_autocast():
    # audio time reaches +-100 field units: a bfloat16 matmul put the phases hundreds of radians off
    field = RFFNet(RFFNetConfig(1, 1, width=16, rff_sigma=15.6))
    x = torch.linspace(-100, 100, 1000)[:, None]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = field.features(x)
    assert mixed.dtype == torch.float32
    assert (mixed - field.features(x)).abs().max() < 1e-3


@pytest.mark.parametrize("name", ["siren", "rffnet", "spder"])
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_a_short_fit_through_neofields_loop_reduces_the_error(name, kind, tiny_clip):
    # 4 frames of bikes at 32x14, or 0.05 s of cello (the clip's first second is near-silent: cut later)
    media = read_media(tiny_clip) if kind == "video" else read_media(BACH, Selection(start=1.0, duration=0.05))
    signal = Signal(media)
    i, o = signal.coordinate_map.in_features, signal.out_features
    torch.manual_seed(0)
    if name in ("siren", "spder"):
        field, lr = (Siren if name == "siren" else Spder)(SirenConfig(i, o, width=128, layers=4)), 1e-4
    else:
        field, lr = RFFNet(RFFNetConfig(i, o, width=128, layers=3, rff_sigma=(5.0, 5.0, 2.0) if i == 3 else 50.0)), 1e-3
    key = f"{kind}_psnr_db"
    before = measure(field, signal)[key]  # render_media + compare over the whole signal
    result = fit(field, signal, FitConfig(lr=lr, warmup_steps=10, steps=150, batch_size=512, device="cpu"))
    after = measure(field, signal)[key]
    assert result.steps == 150
    assert after > before + 5, (before, after)


def test_spder_is_a_siren_with_a_damped_sine():
    torch.manual_seed(0)
    siren = Siren(SirenConfig(3, 3, width=16, layers=3))
    spder = Spder(SirenConfig(3, 3, width=16, layers=3))
    spder.load_state_dict(siren.state_dict())
    z = torch.linspace(-2, 2, 101)
    assert torch.allclose(spder.activation(z), torch.sin(30 * z) * z.abs().sqrt(), atol=1e-5)
    x = torch.rand(5, 3) * 2 - 1
    assert not torch.allclose(spder(x), siren(x))
    zero = torch.zeros(3, requires_grad=True)
    spder.activation(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()  # finite at exactly zero
