from pathlib import Path

import pytest
import torch

from neofield.fields.attention import LinearAttention, SoftmaxAttention
from neofield.fields.encodings import rff_frequencies
from neofield.fields.layouts import TimeSegments
from neofield.fields.neomlp import NeoMLPField, build_config


@pytest.mark.parametrize("preset,inputs,outputs,expected", [("audio", 1, 1, 182_017), ("video", 3, 3, 3_189_249)])
def test_paper_presets_have_the_papers_parameter_counts(preset, inputs, outputs, expected):
    field = NeoMLPField(build_config(preset, inputs, outputs))
    assert field.num_parameters()["total"] == expected


def test_output_bias_starts_at_zero_and_rff_projection_has_variance_two_over_d():
    field = NeoMLPField(build_config("audio", 1, 1))
    assert field.backbone.readout.bias.item() == 0
    var = field.backbone.rff_proj.weight.var().item()
    assert abs(var - 2 / 512) < 0.1 * 2 / 512


def test_hidden_tokens_are_permutation_symmetric_outputs_are_not():
    torch.manual_seed(0)
    field = NeoMLPField(build_config("tiny", 3, 3, hidden_tokens=4)).eval()
    coords = torch.rand(16, 3) * 2 - 1
    with torch.no_grad():
        base = field(coords)
        table = field.latents.table
        h = field.config.hidden_tokens
        table[0, :h] = table[0, :h][torch.tensor([2, 0, 3, 1])]
        assert torch.allclose(field(coords), base, atol=1e-5)
        table[0, h:] = table[0, h:][torch.tensor([1, 2, 0])]
        table.add_(0)  # permuting output tokens permutes the outputs
        assert not torch.allclose(field(coords), base, atol=1e-5)


@pytest.mark.parametrize("attention", [LinearAttention, SoftmaxAttention])
def test_attention_keeps_shape_and_mixes_only_within_a_point(attention):
    attn = attention(32, 4)
    x = torch.randn(5, 7, 32)
    y = attn(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[1] += 1  # changing point 1 must not change point 0
    assert torch.allclose(attn(x2)[0], y[0])


def test_rff_frequencies_are_regenerated_identically_from_the_seed():
    a = rff_frequencies(3, 64, 10.0, seed=7)
    assert torch.equal(a, rff_frequencies(3, 64, 10.0, seed=7))
    assert not torch.equal(a, rff_frequencies(3, 64, 10.0, seed=8))
    per_axis = rff_frequencies(2, 64, (1.0, 4.0), seed=7)
    assert per_axis[1].std() > 2 * per_axis[0].std()


def test_each_segment_uses_its_own_latents():
    torch.manual_seed(0)
    field = NeoMLPField(build_config("tiny", 1, 1), TimeSegments(2, -1, 1)).eval()
    coords = torch.tensor([[-0.5], [0.5]])
    with torch.no_grad():
        before = field(coords)
        field.latents.table[1] += 0.5
        after = field(coords)
    assert torch.equal(before[0], after[0]) and not torch.equal(before[1], after[1])


def test_last_layer_computes_the_output_tokens_exactly():
    torch.manual_seed(0)
    for attention in ("linear", "softmax"):
        field = NeoMLPField(build_config("tiny", 3, 3, attention=attention), TimeSegments(3, -1, 1)).eval()
        bb, coords = field.backbone, torch.rand(64, 3) * 2 - 1
        with torch.no_grad():
            tokens = torch.cat([bb.rff_proj(bb.rff(coords)) + bb.input_embed,
                                field.latents(field.layout.ids(coords))], dim=1)
            for block in bb.blocks:  # every token through every layer: the plain model
                tokens = block(tokens)
            full = bb.readout(bb.norm(tokens[:, -3:])).squeeze(-1)
            assert torch.allclose(field(coords), full, atol=1e-6)


def test_the_ablation_without_fourier_features_is_a_linear_input_layer_and_round_trips():
    from neofield import bundle
    from neofield.codec import signal_metadata
    from neofield.media import Media, Selection
    from neofield.signal import Signal
    from tests.conftest import noise_video

    config = build_config("tiny", 3, 3, encoding="linear")
    field = NeoMLPField(config, TimeSegments(1))  # one latent set: nothing but the inputs tells points apart
    backbone = field.backbone
    assert not hasattr(backbone, "rff") and backbone.input_scale.shape == (3, 32)
    coords = torch.rand(4, 3) * 2 - 1
    before = field(coords)
    with torch.no_grad():
        backbone.input_scale.zero_()  # then the coordinates no longer reach the tokens at all
    assert not torch.allclose(before, field(coords))
    assert torch.allclose(field(coords), field(torch.zeros(4, 3)))
    signal = Signal(Media(video=noise_video(2, 4, 6), fps=10.0))
    meta = {**signal_metadata(signal, Path("a.mp4"), Selection()), "weights_dtype": "float32"}
    with torch.no_grad():
        backbone.input_scale.normal_()
    loaded = bundle.unpack(bundle.pack(field, meta))
    assert torch.equal(loaded.field(coords), field(coords))
    assert loaded.meta["model"]["config"]["encoding"] == "linear"
    assert "encoding" not in build_config("tiny", 3, 3).to_dict()  # the default leaves old bundles' bytes alone
