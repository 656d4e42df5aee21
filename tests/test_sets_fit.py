"""nu-sets: the set sampler, the set field and its optimiser, Algorithms 1 and 2, the files they write."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neofield import bundle as bundle_io
from neofield.errors import NeofieldError
from neofield.fit import FitConfig
from neofield.media import Media
from neofield.quantize import BitDepths, levels_for
from neofield.sets.data import SignalSet
from neofield.collection import item_field
from neofield.sets.field import LatentAdam, SetField
from neofield.sets.fit import (
    fit_latents,
    fit_set,
    load_reps,
    load_set_bundle,
    measure_items,
    render_items,
    save_reps,
    save_set,
)
from neofield.sets.signals import SetSignal
from neofield.signal import Signal

FAST = dict(lr=1e-2, warmup_steps=5, batch_size=512, seed=0, device="cpu", compile="off")


def pictures(n: int = 12, size: int = 6, channels: int = 1, seed: int = 0) -> SignalSet:
    """Smooth random pictures in two classes: bright on the left or on the right."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, size)
    labels = np.arange(n) % 2
    ramps = np.where(labels[:, None, None], x[None, None, :], x[None, None, ::-1]) * np.ones((n, size, size))
    values = (ramps * 200 + rng.uniform(0, 40, (n, 1, 1)))[..., None].repeat(channels, -1)
    return SignalSet("image", values.round().astype(np.uint8), labels.astype(np.int64), ("left", "right"),
                     tuple(f"pic/{i}" for i in range(n)))


def clips(n: int = 3, frames: int = 4, size: int = 8) -> SignalSet:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 256, (n, frames, size, size, 3), dtype=np.uint8)
    return SignalSet("video", values, None, (), tuple(f"clip{i}.mp4" for i in range(n)), rate=10.0)


def test_a_sampled_point_carries_its_item_and_frame_latent_index():
    s = SetSignal(clips())
    assert s.segments_per_item == 4 and s.points_per_item == 4 * 8 * 8
    item, point = torch.tensor([0, 2, 1]), torch.tensor([0, 3 * 64 + 5, 64])
    coords = s.points(item, point)
    assert coords[:, -1].tolist() == [0.0, 2 * 4 + 3, 1 * 4 + 1]  # item * frames + frame
    # the same coordinates the codec gives that item's pixel, and its value in field units
    one = Signal(Media(video=s.data.values[2], fps=10.0))
    assert torch.allclose(coords[1, :3], s.grid[3 * 64 + 5])
    want = one.coordinate_map.coords(torch.tensor([3.5 / 10]), torch.tensor([5.5 / 8]), torch.tensor([0.5 / 8]))
    assert torch.allclose(coords[1, :3], want[0].float(), atol=1e-6)
    assert torch.allclose(s.targets(item, point)[1], torch.from_numpy(s.data.values[2, 3, 0, 5]).float() / 127.5 - 1)


def test_a_set_of_gray_pictures_has_one_output_and_a_gray_layout():
    s = SetSignal(pictures())
    assert s.out_features == 1 and s.coordinate_map.in_features == 3
    layout = s.layout()
    assert layout["outputs"] == {"video": [0, 1]} and layout["geometry"]["video"]["channels"] == 1


def test_lazy_adam_moves_only_the_rows_a_batch_touched():
    table = torch.nn.Parameter(torch.randn(5, 2, 3))
    dense = torch.nn.Parameter(table.detach().clone())
    lazy = LatentAdam([{"params": [table], "lazy": True}], lr=0.1)
    plain = torch.optim.Adam([dense], lr=0.1)
    for _ in range(3):  # row 1 every step, row 3 only in the first
        for p, opt in ((table, lazy), (dense, plain)):
            opt.zero_grad()
            p[[1, 3] if _ == 0 else [1]].sum().backward()
            opt.step()
    before = table.detach().clone()
    assert torch.allclose(table[1], dense[1])  # a row touched every step: exactly Adam
    assert not torch.allclose(table[3], dense[3])  # dense Adam kept moving row 3 by its momentum; lazy did not
    assert torch.equal(table[[0, 2, 4]], before[[0, 2, 4]])
    state = lazy.state_dict()
    again = LatentAdam([{"params": [table], "lazy": True}], lr=0.1)
    again.load_state_dict(state)  # checkpoints and rollbacks save and restore it like Adam
    assert torch.equal(again.state[table]["exp_avg"], lazy.state[table]["exp_avg"])


@pytest.mark.parametrize("optimizer", ["lazy", "adam"])
def test_fitting_a_set_raises_every_signal_psnr(optimizer):
    data = pictures()
    report = fit_set(data, FitConfig(steps=150, **FAST), latent_optimizer=optimizer)
    fresh = SetField(report.field.config, report.field.layout, 1)
    torch.manual_seed(0)
    start = measure_items(fresh, report.signal)
    assert report.psnr.shape == (12,)
    assert (report.psnr > start + 3).all(), (start, report.psnr)
    assert report.psnr.mean() > 22


def test_a_set_bundle_round_trips_and_renders_one_item_as_the_set_does(tmp_path):
    import neofield

    report = fit_set(pictures(), FitConfig(steps=60, **FAST))
    path = tmp_path / "set.nf"
    save_set(path, report)
    field, meta = load_set_bundle(path)
    assert torch.equal(field.latents.table, report.field.latents.table)
    assert meta["collection"]["labels"] == [i % 2 for i in range(12)]
    # item 5 through the codec's decoder equals the set's own render of it
    decoded = neofield.decode(path, tmp_path / "five.png", item=5)
    import imageio.v3 as iio

    png = iio.imread(decoded.path)
    mine = render_items(field, report.signal, torch.tensor([5]))[0].round().clamp(0, 255).to(torch.uint8)
    assert png.shape == (6, 6, 3) and np.array_equal(png[..., 0].reshape(-1), mine[:, 0].numpy())
    assert np.array_equal(png[..., 0], png[..., 2])  # a gray field written as RGB
    one = item_field(field, 1, 5)
    assert one.latents.table.shape[0] == 1
    up = neofield.decode(path, tmp_path / "up.png", item="pic/5", scale=2)
    assert iio.imread(up.path).shape == (12, 12, 3)


def test_a_quantized_set_bundle_holds_exactly_the_weights_the_fit_measured(tmp_path):
    import imageio.v3 as iio

    import neofield

    bits = BitDepths(5, 7)
    config = FitConfig(steps=200, **FAST)
    quantized = fit_set(pictures(), config, weights_dtype="quantized", bits=bits)
    half = fit_set(pictures(), config, weights_dtype="float16")
    assert quantized.config.quantization is not None and half.config.quantization is None  # QAT, as encode
    sizes = {}
    for name, report in (("quantized", quantized), ("float16", half)):
        path = tmp_path / f"{name}.nf"
        sizes[name] = save_set(path, report)
        field, meta = load_set_bundle(path)
        # the bundle holds, bit for bit, the rounded weights the fit measured its items on ...
        stored = field.state_dict()
        assert all(torch.equal(stored[k], v) for k, v in report.field.state_dict().items())
        # ... so what it reports and records is what a decoder of the file gets
        assert torch.equal(measure_items(field, report.signal), report.psnr)
        assert meta["weights_dtype"] == name and meta["quality"]["mean_psnr_db"] == round(float(report.psnr.mean()), 4)
        assert report.summary()["weights_dtype"] == name
    assert meta.get("quantization") is None
    meta = bundle_io.load(tmp_path / "quantized.nf").meta
    assert meta["quantization"] == {"bits": {"backbone": 5.0, "latents": 7.0}}
    assert meta["fit"]["config"]["quantization_aware"] == {"fraction": 0.1, "mode": "round"}
    assert meta["collection"]["items"] == 12 and quantized.summary()["bits"] == {"backbone": 5.0, "latents": 7.0}
    table, readout = quantized.field.latents.table, quantized.field.backbone.readout.weight
    assert len(table.unique()) <= levels_for(7) and len(readout.unique()) <= levels_for(5)
    assert sizes["quantized"] < sizes["float16"] / 2, sizes
    assert quantized.psnr.mean() > 30  # ramps: 6-bit weights finetuned for their levels still fit them
    # one item through the codec's decoder is the set's own render of it
    decoded = neofield.decode(tmp_path / "quantized.nf", tmp_path / "seven.png", item=7)
    png = iio.imread(decoded.path)
    mine = render_items(quantized.field, quantized.signal, torch.tensor([7]))[0].round().clamp(0, 255)
    assert np.array_equal(png[..., 0].reshape(-1), mine[:, 0].to(torch.uint8).numpy())


def test_a_set_is_stored_as_it_was_fitted(tmp_path):
    with pytest.raises(NeofieldError, match="--dtype must be one of quantized, float16, bfloat16, float32"):
        fit_set(pictures(4), FitConfig(steps=5, **FAST), weights_dtype="int8")
    with pytest.raises(NeofieldError, match="--bits apply to --dtype quantized, not float16"):
        fit_set(pictures(4), FitConfig(steps=5, **FAST), weights_dtype="float16", bits=BitDepths(4, 4))
    report = fit_set(pictures(4), FitConfig(steps=5, **FAST), measure=False, weights_dtype="quantized")
    assert report.bits == BitDepths() and torch.isnan(report.psnr).all()  # the codec's default depths
    report.psnr = torch.zeros(4)
    assert save_set(tmp_path / "a.nf", report) > 0
    assert bundle_io.load(tmp_path / "a.nf").meta["quantization"] == {"bits": {"backbone": 6.0, "latents": 6.0}}


def test_decoding_a_set_needs_an_item_in_range(tmp_path):
    import neofield

    report = fit_set(pictures(4), FitConfig(steps=5, **FAST), measure=False)
    report.psnr = torch.zeros(4)
    path = tmp_path / "set.nf"
    save_set(path, report)
    with pytest.raises(NeofieldError, match="holds a set of 4 signals: pick one with --item"):
        neofield.decode(path, tmp_path / "a.png")
    with pytest.raises(NeofieldError, match="--item 4 is out of range"):
        neofield.decode(path, tmp_path / "a.png", item=4)
    with pytest.raises(NeofieldError, match="no item named 'nope'"):
        neofield.decode(path, tmp_path / "a.png", item="nope")
    assert not (tmp_path / "a.png").exists()


def test_fitting_latents_keeps_the_backbone_and_fits_new_signals_in_chunks():
    train = fit_set(pictures(12), FitConfig(steps=150, **FAST))
    before = {k: v.clone() for k, v in train.field.backbone.state_dict().items()}
    new = pictures(10, seed=7)
    whole = fit_latents(train.field, train.signal.layout(), new, FitConfig(steps=60, **FAST), chunk=100)
    parts = fit_latents(train.field, train.signal.layout(), new, FitConfig(steps=60, **FAST), chunk=4)
    assert len(parts.fit) == 3 and len(whole.fit) == 1  # 4 + 4 + 2 signals
    assert all(torch.equal(v, train.field.backbone.state_dict()[k]) for k, v in before.items())
    assert torch.equal(whole.field.backbone.state_dict()["readout.weight"], before["readout.weight"])
    assert whole.field.latents.table.shape == (10, *train.field.latents.table.shape[1:])
    fresh = SetField(train.field.config, whole.field.layout, 1)
    fresh.backbone.load_state_dict(train.field.backbone.state_dict())
    torch.manual_seed(0)
    fresh.latents.table.data.normal_(0, 1e-3 ** 0.5)
    start = measure_items(fresh, whole.signal)
    assert (whole.psnr > start + 2).all() and (parts.psnr > start + 2).all()
    # every signal gets the same steps with the same points per step, whatever its chunk
    assert whole.fit[0].steps == parts.fit[0].steps == parts.fit[2].steps == 60


def test_latents_for_signals_of_another_grid_are_refused():
    train = fit_set(pictures(4), FitConfig(steps=5, **FAST), measure=False)
    with pytest.raises(NeofieldError, match="do not have the backbone's grid .*width, height: 8, 8 against 6, 6"):
        fit_latents(train.field, train.signal.layout(), pictures(4, size=8), FitConfig(steps=5, **FAST))


def test_reps_round_trip_with_labels_and_psnr(tmp_path):
    train = fit_set(pictures(6), FitConfig(steps=20, **FAST))
    path = tmp_path / "reps.safetensors"
    save_reps(path, train, "set.nf")
    reps = load_reps(path)
    assert reps.latents.shape == (6, 1, 3, 32) and reps.features.shape == (6, 96)
    assert reps.labels.tolist() == [0, 1, 0, 1, 0, 1] and torch.equal(reps.psnr, train.psnr.float())
    assert reps.meta["classes"] == ["left", "right"] and reps.meta["backbone"] == "set.nf"
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(NeofieldError, match="is not a safetensors file"):
        load_reps(tmp_path / "junk.safetensors")
    with pytest.raises(NeofieldError, match="does not exist"):
        load_reps(tmp_path / "missing.safetensors")


def test_new_latents_start_from_the_backbones_mean_latent_set_at_each_position():
    train = fit_set(clips(3, frames=2), FitConfig(steps=30, **FAST))
    table = train.field.latents.table.detach()
    # lr ~0: the fit leaves each signal where it started
    still = fit_latents(train.field, train.signal.layout(), clips(3, frames=2),
                        FitConfig(**{**FAST, "lr": 1e-12, "steps": 3}), chunk=2)
    start = table.reshape(3, 2, *table.shape[1:]).mean(0)  # per frame position
    assert torch.allclose(still.field.latents.table, start.repeat(3, 1, 1), atol=1e-6)
    noise = fit_latents(train.field, train.signal.layout(), clips(3, frames=2),
                        FitConfig(**{**FAST, "lr": 1e-12, "steps": 3}), init="normal")
    assert noise.field.latents.table.abs().max() < 0.2 and noise.field.latents.table.std() > 0.01
    with pytest.raises(NeofieldError, match="--init must be one of mean, normal"):
        fit_latents(train.field, train.signal.layout(), clips(3, frames=2), FitConfig(steps=3, **FAST), init="zero")


def test_balanced_sampling_gives_every_signal_the_same_points_and_each_point_once_per_pass():
    s = SetSignal(pictures(3, size=4), balanced=True)  # 16 points per picture
    gen = torch.Generator().manual_seed(0)
    seen = []
    for _ in range(4):  # 4 steps of 4 points: one pass over the grid
        coords, targets, _ = s.sample(3 * 4, gen)
        ids = coords[:, -1].long()
        assert torch.equal(torch.bincount(ids, minlength=3), torch.tensor([4, 4, 4]))
        per_item = [coords[ids == i, :-1] for i in range(3)]
        assert all(torch.equal(per_item[0], p) for p in per_item[1:])  # the same points, in the same order
        seen.append(per_item[0])
    assert len(torch.cat(seen).unique(dim=0)) == 16  # every point of the grid once
