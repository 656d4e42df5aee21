"""NeoGrid: latent pyramids read by a one-layer NeoMLP; its fast path, its size and its cost."""

from __future__ import annotations

import pytest
import torch

from neofield.fields.grid import level_sizes
from neofield.fields.gridmlp import grid_config_for
from neofield.fields.neogrid import LeanNeoMLP, NeoGridConfig, NeoGridField, neogrid_for, pyramids_of
from neofield.fields.registry import BATCHES, MAX_BATCH, arch_of, batch_for, parameter_count

VIDEO = dict(low=(-1.0, -1.0, -1.0), high=(1.0, 1.0, 1.0), picture=(64, 28, 8), audio_samples=None,
             out_features=3, audio_outputs=0)
SOUND = dict(low=(-10.0,), high=(10.0,), picture=None, audio_samples=40000, out_features=2, audio_outputs=2)
AV = dict(low=(-1.0, -1.0, -1.0), high=(1.0, 1.0, 1.0), picture=(16, 10, 3), audio_samples=5000, out_features=5,
          audio_outputs=2)


@pytest.mark.parametrize("heads, attention, ffn, hidden", [(1, "linear", 16, 2), (2, "linear", 16, 2),
                                                           (1, "softmax", 16, 2), (1, "linear", 0, 2),
                                                           (1, "linear", 0, 8)])
def test_the_training_and_decode_paths_compute_the_general_layer_and_its_gradients(heads, attention, ffn, hidden):
    torch.manual_seed(0)
    c = NeoGridConfig(3, 3, tokens=4, channels=2, dim=8, hidden_tokens=hidden, ffn_dim=ffn, heads=heads,
                      attention=attention)
    net = LeanNeoMLP(c)
    with torch.no_grad():
        net.output_embed.normal_()  # away from the start, where every output token is nearly the same
    levels = torch.randn(64, 4, 2)
    tokens = torch.cat([net.to_hidden(levels.flatten(1)).view(64, c.hidden_tokens, c.dim),
                        net.output_embed.expand(64, -1, -1)], 1)
    if ffn:  # the general path is NeoMLP's own layer, keeping the output tokens
        general = net.readout(net.norm(net.block(tokens, keep=c.out_features))).squeeze(-1)
    else:
        x = tokens[:, -3:] + net.block.attn(net.block.norm1(tokens), queries=3)
        general = net.readout(net.norm(x)).squeeze(-1)
    trained = net(levels)  # training's path (fused when folded)
    assert torch.allclose(trained, general, atol=1e-5)
    weights = torch.linspace(-1, 1, general.numel()).view_as(general)  # a loss that tells the outputs apart
    expected = torch.autograd.grad((general * weights).sum(), list(net.parameters()))
    for got, want in zip(torch.autograd.grad((trained * weights).sum(), list(net.parameters())), expected):
        assert torch.allclose(got, want, atol=1e-5)
    with torch.no_grad():  # a decode's path (feature-major when folded)
        assert torch.allclose(net(levels), general, atol=1e-5)
    assert sum(p.numel() for p in net.parameters()) == parameter_count("neogrid", c, None)  # counted unbuilt


@pytest.mark.parametrize("shape", [VIDEO, SOUND, AV], ids=["video", "sound", "av"])
def test_a_field_is_sized_near_its_parameter_budget_and_counted_without_building_it(shape):
    field = neogrid_for(parameters=20_000, **shape)
    n = field.num_parameters()
    assert 0.8 * 20_000 < n["total"] < 1.05 * 20_000 and n["latents"] > 0.9 * n["total"]
    assert parameter_count("neogrid", field.config, field.layout) == n["total"]
    assert arch_of(field) == "neogrid"
    assert field(torch.rand(10, len(shape["low"])) * 2 - 1).shape == (10, shape["out_features"])


def test_a_video_with_sound_has_a_picture_pyramid_and_a_sound_pyramid_over_time():
    layout = pyramids_of(grid_config_for(parameters=20_000, **AV))
    assert [p.axes for p in layout.pyramids] == [(0, 1, 2), (2,)]
    assert layout.tokens == sum(p.levels for p in layout.pyramids)


def test_a_larger_budget_lays_finer_levels():
    small, large = (neogrid_for(parameters=n, **VIDEO).layout.pyramids[0].fine for n in (5_000, 80_000))
    assert all(a <= b for a, b in zip(small, large)) and small != large


def test_the_time_axis_keeps_more_of_its_resolution_than_space_at_the_same_budget_and_never_passes_its_frames():
    clip = {**VIDEO, "picture": (320, 136, 50)}
    even, weighted = (grid_config_for(parameters=400_000, time_weight=w, **clip) for w in (1.0, 2.5))
    assert even.fine[2] / 50 < weighted.fine[2] / 50 and weighted.fine[0] < even.fine[0]
    assert weighted.fine[2] / 50 > weighted.fine[0] / 320  # time kept finer than space
    budget = [sum(s[0] * s[1] * s[2] for s in level_sizes(c.coarse, c.fine, c.levels)) for c in (even, weighted)]
    assert abs(budget[1] / budget[0] - 1) < 0.05  # the same nodes, laid differently
    rich = grid_config_for(parameters=4_000_000, time_weight=2.5, **clip)
    assert rich.fine[2] == 50  # as fine as the frames, no finer
    image = {**VIDEO, "picture": (64, 28, 1)}  # a still keeps its layout
    assert grid_config_for(parameters=50_000, time_weight=2.5, **image) == grid_config_for(parameters=50_000, **image)


def test_a_decoded_point_costs_its_reads_and_one_layer_a_hundredth_of_the_papers_field():
    from neofield.fields.cost import macs_per_point, read_macs

    field = neogrid_for(parameters=20_000, **VIDEO)
    assert read_macs(field) == field.layout.tokens * field.layout.channels * 8  # 8 nodes a level, trilinear
    assert 500 < macs_per_point(field) < 5_000  # against ~177 k for the paper's field (tests/test_cost.py)


def test_taps_give_the_picture_four_more_tokens_within_the_same_parameters():
    plain, tapped = (neogrid_for(parameters=20_000, taps=t, **VIDEO) for t in (0, 1))
    assert tapped.config.tokens == plain.config.tokens + 4 == tapped.layout.tokens
    # the wider linear map takes its few weights from the pyramid's share of the budget
    assert 0.97 * plain.layout.sets <= tapped.layout.sets <= plain.layout.sets
    assert neogrid_for(parameters=20_000, taps=1, **SOUND).layout.tokens == 8  # a sound has no taps
    coords = torch.rand(64, 3) * 2 - 1
    assert tapped(coords).shape == (64, 3)


def test_the_config_must_read_what_the_layout_lays():
    layout = pyramids_of(grid_config_for(parameters=20_000, **VIDEO))
    with pytest.raises(ValueError, match="tokens and channels"):
        NeoGridField(NeoGridConfig(3, 3, tokens=layout.tokens + 1, channels=layout.channels), layout)


def test_a_few_hundred_steps_fit_a_smooth_signal_to_a_twentieth_of_its_variance():
    torch.manual_seed(0)
    field = neogrid_for(parameters=4_000, **VIDEO)
    coords = torch.rand(4096, 3) * 2 - 1
    target = torch.stack([torch.sin(3 * coords[:, 0]), torch.cos(2 * coords[:, 1]), coords[:, 2]], 1) * 0.5
    opt = torch.optim.Adam(field.parameters(), 1e-2)
    for _ in range(300):
        loss = ((field(coords) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * target.var().item()  # 1/20 of it (a constant would score 1)


def test_the_outputs_asked_for_are_those_of_the_whole_field():
    torch.manual_seed(0)
    field = neogrid_for(parameters=20_000, **AV)
    with torch.no_grad():
        field.backbone.output_embed.normal_()
    coords = torch.rand(64, 3) * 2 - 1
    whole = field(coords)
    for part in (slice(0, 3), slice(3, 5), slice(2, 4)):
        assert torch.allclose(field(coords, part), whole[:, part], atol=1e-6)


@pytest.mark.parametrize("outputs", [None, slice(0, 3), slice(3, 9)])
def test_the_decode_path_computes_the_training_path_whatever_the_levels_memory(outputs):
    """Feature-major (a decode) and point-major (training) compute the same layer, from levels laid either way."""
    torch.manual_seed(0)
    net = LeanNeoMLP(NeoGridConfig(3, 9, tokens=14, channels=2, hidden_tokens=3))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        feature_major = torch.randn(14, 2, 300).permute(2, 0, 1).reshape(300, -1)  # as the layout reads them
        point_major = feature_major.contiguous()
        expected = net.fused(point_major, outputs)
        for levels in (feature_major, point_major):
            assert torch.allclose(net.fast_by_feature(levels, outputs), expected, atol=1e-5)
        assert torch.allclose(net(point_major.view(300, 14, 2), outputs), expected, atol=1e-5)


def test_the_layer_stays_exact_while_its_keys_stay_within_84():
    """Its softmax over tokens has no per-point maximum: a shift from the weights keeps its exps in range. Keys
    of +-84 over 11 tokens would overflow float32's sum of exps unshifted (11 e^84 > 3.4e38)."""
    torch.manual_seed(0)
    c = NeoGridConfig(3, 3, tokens=4, channels=2)
    net = LeanNeoMLP(c)
    with torch.no_grad():
        net.output_embed.normal_()
        w_k = net.block.attn.qkv.weight[c.dim:2 * c.dim]
        w_k *= 84 / (c.dim ** 0.5 * w_k.norm(dim=1, keepdim=True))  # a key is at most sqrt(D) |w_k| = 84
        w_k[:, 0] += 84 / c.dim ** 0.5  # most of it along one feature of the normed tokens: keys reach ~+-70
        w_k *= 84 / (c.dim ** 0.5 * w_k.norm(dim=1, keepdim=True))
    levels = torch.randn(64, 4, 2)
    hidden = net.to_hidden(levels.flatten(1)).view(64, c.hidden_tokens, c.dim)
    tokens = torch.cat([hidden, net.output_embed.expand(64, -1, -1)], 1)
    x = tokens[:, -3:] + net.block.attn(net.block.norm1(tokens), queries=3)
    general = net.readout(net.norm(x)).squeeze(-1)
    folded = net(levels)
    assert torch.isfinite(folded).all() and torch.allclose(folded, general, atol=1e-4)
    with torch.no_grad():
        decoded = net(levels)
    assert torch.isfinite(decoded).all() and torch.allclose(decoded, general, atol=1e-4)


def test_a_decode_keeps_the_folded_weights_until_they_change():
    torch.manual_seed(0)
    field = neogrid_for(parameters=20_000, **VIDEO)
    coords = torch.rand(64, 3) * 2 - 1
    with torch.no_grad():
        before = field(coords)
        assert torch.equal(field(coords), before)  # from the kept fold
        field.backbone.readout.bias += 1.0
        assert torch.allclose(field(coords), before + 1.0, atol=1e-6)  # the fold follows the weights


def test_a_video_grids_batch_grows_with_its_parameters_in_powers_of_two_and_a_sounds_does_not():
    assert batch_for("neogrid", "video", 65_000, 1024) == BATCHES["neogrid"]  # a preset-sized field: the measured 4,096
    assert batch_for("neogrid", "video", 1_017_343, 1024) == 32_768  # whole bikes at lambda 0.06: a 32nd, rounded up
    assert batch_for("grid", "video", 353_555, 1024) == 16_384
    assert batch_for("neogrid", "video", 10**9, 1024) == MAX_BATCH
    assert batch_for("neogrid", "audio", 10**7, 1024) == batch_for("neogrid", "audiovisual", 10**7, 1024) == 4096
    assert batch_for("neomlp", "video", 10**7, 1024) == 1024  # a per-point transformer keeps its own


def test_taps_of_a_level_whose_latents_all_round_to_zero_are_dropped_and_the_field_is_unchanged():
    from neofield.fields.neogrid import without_idle_taps

    torch.manual_seed(0)
    tapped = neogrid_for(parameters=20_000, taps=1, **VIDEO)
    first, end = tapped.layout.spans()[-1]
    with torch.no_grad():
        tapped.latents.table.normal_(0, 0.5)
        tapped.latents.table[first:end] = 0.04  # the finest level: all under half of a 0.1 step
        tapped.backbone.to_hidden.weight.normal_(0, 0.3)
    assert without_idle_taps(tapped, 0.05) is tapped  # at a finer step the level is in use: kept as it is
    lean = without_idle_taps(tapped, 0.1)
    assert lean.layout.pyramids[0].taps == 0 and lean.config.tokens == tapped.config.tokens - 4
    with torch.no_grad():
        rounded = torch.round(tapped.latents.table / 0.1) * 0.1
        tapped.latents.table.copy_(rounded)
        lean.latents.table.copy_(rounded)
    coords = torch.rand(500, 3) * 2 - 1
    assert torch.allclose(lean(coords), tapped(coords), atol=1e-6)
    sound = neogrid_for(parameters=20_000, **SOUND)
    assert without_idle_taps(sound, 0.1) is sound
