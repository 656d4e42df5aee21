import copy
import math

import pytest
import torch

import neofield.fit as fit_module
from neofield.codec import make_field, measure
from neofield.errors import NeofieldError
from neofield.fields.neogrid import NeoGridField
from neofield.fit import FitConfig, fit
from neofield.media import read_media
from neofield.qat import QuantizationAware
from neofield.quantize import fake_quantize, levels_for
from neofield.runtime import compiler_available
from neofield.schedule import lr_at
from neofield.signal import Signal


def test_fit_on_a_real_clip_piece_reaches_24_db(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    field = make_field(signal, "tiny", segments=4)
    before = measure(field, signal)["video_psnr_db"]
    result = fit(field, signal, FitConfig(lr=5e-3, warmup_steps=20, steps=400, batch_size=1024, device="cpu"))
    after = measure(field, signal)["video_psnr_db"]
    assert result.steps == 400
    assert before < 15 and after > 24, (before, after)


def test_fit_is_reproducible_with_a_seed(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    weights = []
    for _ in range(2):
        field = make_field(signal, "tiny", segments=2, seed=3)
        fit(field, signal, FitConfig(steps=15, batch_size=256, seed=3, device="cpu"))
        weights.append(torch.cat([p.flatten() for p in field.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_the_fit_runs_adam_with_the_configs_beta2(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    for beta2 in (0.999, 0.99):
        field, states = make_field(signal, "tiny", segments=2, seed=3), []
        fit(field, signal, FitConfig(steps=2, batch_size=64, device="cpu", adam_beta2=beta2, checkpoint_every=1e-9),
            on_checkpoint=states.append)
        assert states and all(g["betas"] == (0.9, beta2) for g in states[-1].optimizer["param_groups"])


def test_time_budget_stops_the_fit(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    field = make_field(signal, "tiny", segments=1)
    result = fit(field, signal, FitConfig(time_budget=1.0, batch_size=256, device="cpu"))
    assert 0 < result.steps and result.seconds < 3.0


def test_quantization_aware_finetuning_recovers_what_rounding_costs(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    base = make_field(signal, "tiny", segments=4)
    fit(base, signal, FitConfig(lr=5e-3, warmup_steps=20, steps=300, batch_size=1024, device="cpu"))
    scores = {}
    for mode in (None, "round"):
        field = copy.deepcopy(base)
        if mode:
            levels = {name: levels_for(4) for name, _ in field.named_parameters()}
            fit(field, signal, FitConfig(lr=5e-4, warmup_steps=0, steps=100, batch_size=1024, device="cpu",
                                         quantization=QuantizationAware(levels, fraction=1.0, mode=mode)))
        with torch.no_grad():
            for p in field.parameters():
                p.copy_(fake_quantize(p, levels_for(4)))
        scores[mode] = measure(field, signal)["video_psnr_db"]
    assert scores["round"] > scores[None] + 1.0, scores


def test_quantization_aware_steps_leave_float_weights_to_the_optimiser(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    field = make_field(signal, "tiny", segments=1)
    levels = {name: 4 for name, _ in field.named_parameters()}
    fit(field, signal, FitConfig(lr=1e-4, steps=3, batch_size=64, device="cpu",
                                 quantization=QuantizationAware(levels, fraction=1.0)))
    # after a few small steps the weights are near their float start, not snapped onto 4 levels
    assert all(len(torch.unique(p)) > 4 for p in field.parameters() if p.numel() > 8)


def test_a_time_budget_that_stops_the_fit_early_still_finetunes(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    field = make_field(signal, "tiny", segments=1)
    started = []

    def levels(f):
        started.append(True)
        return {name: 16 for name, _ in f.named_parameters()}

    # a step count far beyond what 4 s allows: finetuning must start on time, not on steps
    fit(field, signal, FitConfig(steps=10**6, time_budget=4.0, batch_size=256, device="cpu",
                                 quantization=QuantizationAware(levels, fraction=0.5)))
    assert started == [True]


def test_slow_first_steps_do_not_cut_a_time_budget_short(tiny_clip):
    import time as clock

    class SlowStart(torch.nn.Module):  # as when kernels are set up on the first calls
        def __init__(self, field):
            super().__init__()
            self.field, self.calls = field, 0

        def forward(self, coords):
            self.calls += 1
            if self.calls <= 5:
                clock.sleep(0.5)
            return self.field(coords)

    signal = Signal(read_media(tiny_clip))
    model = SlowStart(make_field(signal, "tiny", segments=1))
    result = fit(model, signal, FitConfig(time_budget=6.0, batch_size=256, device="cpu"))
    assert result.seconds > 0.9 * 6.0  # timed from the first steps alone, the plan ended at ~4.5 s


def _fit_weights(signal, **config):
    field = make_field(signal, "tiny", segments=2, seed=1)
    fit(field, signal, FitConfig(steps=30, batch_size=256, seed=1, device="cpu", precision="float32", **config))
    return field, torch.cat([p.detach().flatten() for p in field.parameters()])


@pytest.mark.skipif(not compiler_available(torch.device("cpu")), reason="no C++ compiler for inductor")
def test_compiled_training_follows_the_eager_fit_within_float_tolerance(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    field, compiled = _fit_weights(signal, compile="on")
    _, eager = _fit_weights(signal, compile="off")
    # inductor's kernels round differently from eager ones: the two fits must stay close, not equal
    assert torch.allclose(compiled, eager, atol=2e-4, rtol=1e-3), (compiled - eager).abs().max()
    coords = signal.sample(512, torch.Generator().manual_seed(5))[0]
    with torch.no_grad():
        assert torch.allclose(torch.compile(field, dynamic=False)(coords), field(coords), atol=1e-5)


def test_a_failing_compiler_falls_back_to_eager_and_says_so(tiny_clip, monkeypatch):
    class Broken:
        def __call__(self, *args):
            raise RuntimeError("no cc")

    monkeypatch.setattr(torch, "compile", lambda module, **kw: Broken())
    monkeypatch.setattr(fit_module, "compiler_available", lambda device: True)
    signal = Signal(read_media(tiny_clip))
    notes = []
    field = make_field(signal, "tiny", segments=2, seed=1)
    result = fit(field, signal, FitConfig(steps=30, batch_size=256, seed=1, device="cpu", precision="float32",
                                          compile="on"), callback=lambda p: p.note and notes.append(p.note))
    _, eager = _fit_weights(signal, compile="off")
    assert result.steps == 30
    assert any("failed" in n for n in notes), notes
    assert torch.equal(torch.cat([p.detach().flatten() for p in field.parameters()]), eager)


def test_short_fits_stay_eager_and_compile_on_without_a_compiler_is_refused(tiny_clip, monkeypatch):
    def never(module, **kw):
        raise AssertionError("a 30-step fit must not spend seconds compiling")

    monkeypatch.setattr(torch, "compile", never)
    signal = Signal(read_media(tiny_clip))
    _fit_weights(signal)  # compile="auto"
    monkeypatch.setattr(fit_module, "compiler_available", lambda device: False)
    with pytest.raises(NeofieldError, match="--compile on needs a C\\+\\+ compiler"):
        _fit_weights(signal, compile="on")
    with pytest.raises(NeofieldError, match="--compile must be one of"):
        _fit_weights(signal, compile="yes")


class NanOnCue(torch.nn.Module):
    """A field whose output turns to NaN on the forward calls ``bad(call)`` picks: a divergence on cue."""

    def __init__(self, field, bad):
        super().__init__()
        self.field, self.bad, self.calls = field, bad, 0

    def forward(self, coords):
        self.calls += 1
        out = self.field(coords)
        return out * float("nan") if self.bad(self.calls) else out


def test_a_nan_loss_rolls_back_to_the_last_snapshot_at_half_the_rate(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    model = NanOnCue(make_field(signal, "tiny", segments=1), lambda call: call == 150)
    config = FitConfig(steps=200, batch_size=128, device="cpu", compile="off")
    progress = []
    result = fit(model, signal, config, callback=progress.append)
    assert [p.note for p in progress if p.note] == [
        "the loss was nan at step 150: rolled back to step 100, learning rate halved"]
    assert result.steps == 200 and math.isfinite(result.final_loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    last = progress[-1]
    assert last.step == 200 and math.isclose(last.lr, 0.5 * lr_at(199, 200, config))  # halved for good


def test_a_sixth_divergence_ends_the_fit_in_one_line(tiny_clip):
    signal = Signal(read_media(tiny_clip))
    model = NanOnCue(make_field(signal, "tiny", segments=1), lambda call: call >= 20)
    notes = []
    with pytest.raises(NeofieldError) as failure:
        fit(model, signal, FitConfig(steps=100, batch_size=128, device="cpu", compile="off"),
            callback=lambda p: p.note and notes.append(p.note))
    assert len(notes) == 5 and all("rolled back to step 0, learning rate halved" in n for n in notes), notes
    message = str(failure.value)
    assert "\n" not in message and message.startswith("the fit diverged at step 1 (the loss was nan)"), message
    assert "after 5 rollbacks" in message and message.endswith("try a lower --lr")


def _rated_fit(clip, lam: float | None, steps: int = 300):
    from neofield.codec.build import neogrid_field
    from neofield.latent_rate import RateTerm

    signal = Signal(read_media(clip))
    torch.manual_seed(0)
    field = neogrid_field(signal, 3_000)
    levels = {n: 64 for n, _ in field.named_parameters()}
    config = FitConfig(lr=1e-2, warmup_steps=20, steps=steps, batch_size=512, device="cpu",
                       quantization=QuantizationAware(levels, 0.1), rate=RateTerm(lam) if lam is not None else None)
    first = float(measure(field, signal)["video_psnr_db"])
    fit(field, signal, config)
    return field, first, float(measure(field, signal)["video_psnr_db"])


def test_a_rate_term_fits_latents_that_cost_fewer_bits_and_still_fits_the_signal(tiny_clip):
    from neofield.latent_rate import LATENT_STEP, latent_bits, rated

    plain, _, plain_psnr = _rated_fit(tiny_clip, None)
    priced, before, priced_psnr = _rated_fit(tiny_clip, 0.5)
    with torch.no_grad():
        bits = {name: float(latent_bits(*rated(f), LATENT_STEP)) for name, f in (("plain", plain), ("priced", priced))}
    assert bits["priced"] < 0.7 * bits["plain"], bits
    assert priced_psnr > before + 3 and plain_psnr > before + 3, (before, priced_psnr, plain_psnr)


def test_a_rate_term_needs_quantized_weights_and_a_pyramid():
    from neofield.latent_rate import RateTerm
    from neofield.media import Media
    from tests.conftest import noise_video

    signal = Signal(Media(video=noise_video(2, 4, 6), fps=10.0))
    with pytest.raises(NeofieldError, match="quantized"):
        fit(make_field(signal, "tiny", segments=2), signal, FitConfig(steps=2, rate=RateTerm(0.1), device="cpu"))
    levels = QuantizationAware({}, 0.1)
    with pytest.raises(NeofieldError, match="neogrid"):
        fit(make_field(signal, "tiny", segments=2), signal,
            FitConfig(steps=2, rate=RateTerm(0.1), quantization=levels, device="cpu"))


def test_a_compile_that_outlasts_a_quarter_of_the_budget_does_not_cut_the_fit_short(tiny_clip, monkeypatch):
    import time as clock

    class SlowCompile:  # torch.compile's first call builds the kernels: seconds in which no step is taken
        def __init__(self, module):
            self.module, self.calls = module, 0

        def __call__(self, coords):
            self.calls += 1
            if self.calls == 1:
                clock.sleep(2.0)
            return self.module(coords)

    monkeypatch.setattr(torch, "compile", lambda module, **kw: SlowCompile(module))
    monkeypatch.setattr(fit_module, "compiler_available", lambda device: True)
    monkeypatch.setattr(fit_module, "PROBE_SECONDS", 0.5)  # the plan after 0.5 s, the compile 2 s: as 3 s and 25 s
    signal = Signal(read_media(tiny_clip))
    field = make_field(signal, "tiny", segments=1)
    result = fit(field, signal, FitConfig(time_budget=9.0, batch_size=256, device="cpu", compile="on"))
    # timed over the compile, the replan at a quarter of the budget planned a fifth of the steps, ending the fit
    # at ~4 s, before the next replan could see the real speed
    assert result.seconds > 0.9 * 9.0


def test_auto_compiles_a_long_fit_unless_its_kind_of_signal_is_one_the_field_fits_faster_eagerly(monkeypatch):
    monkeypatch.setattr(fit_module, "compiler_available", lambda device: True)
    long_plan = dict(step=10, total=10**6, elapsed=1.0, mark=(5, 0.5))  # ~100,000 s of eager steps left
    auto, cpu = FitConfig(compile="auto"), torch.device("cpu")
    assert fit_module._should_compile(auto, cpu, **long_plan, kind="video")
    assert fit_module._should_compile(auto, cpu, **long_plan, kind="audio")
    assert not fit_module._should_compile(auto, cpu, **long_plan, kind="audiovisual")  # its compiled step is slower
    assert fit_module._should_compile(FitConfig(compile="on"), cpu, **long_plan, kind="audiovisual")
    assert not fit_module._should_compile(auto, cpu, step=10, total=20, elapsed=1.0, mark=(5, 0.5), kind="video")
    # a field may name the kinds it fits faster eagerly: neogrid's sound too
    neogrid = NeoGridField.eager_kinds
    assert not fit_module._should_compile(auto, cpu, **long_plan, kind="audio", eager_kinds=neogrid)
    assert fit_module._should_compile(auto, cpu, **long_plan, kind="video", eager_kinds=neogrid)


def test_a_pictures_points_are_drawn_by_a_map_that_finds_where_its_error_is():
    from neofield.media import Media

    video = torch.full((2, 16, 32, 3), 128, dtype=torch.uint8)
    video[:, :8, :8] = torch.randint(0, 256, (2, 8, 8, 3), generator=torch.Generator().manual_seed(0),
                                     dtype=torch.uint8)  # noise in the first tile of each frame, flat elsewhere
    signal = Signal(Media(video=video.numpy(), fps=10.0))
    states = []
    fit(make_field(signal, "tiny", segments=1), signal,
        FitConfig(steps=60, batch_size=256, device="cpu", compile="off", checkpoint_every=1e-9),
        on_checkpoint=states.append)
    errors = states[-1].errors.view(2, 2, 4)  # frames x tile rows x tile columns
    noisy = errors[:, 0, 0]
    assert noisy.min() > 5 * errors.flatten(1)[:, 1:].max(), errors


def test_a_fit_drawn_uniformly_or_a_sound_keeps_no_error_map(tiny_clip, tiny_sound):
    for source, sampling in ((tiny_clip, "uniform"), (tiny_sound, "error")):
        signal, states = Signal(read_media(source)), []
        fit(make_field(signal, "tiny", segments=1), signal,
            FitConfig(steps=3, batch_size=64, device="cpu", compile="off", sampling=sampling, checkpoint_every=1e-9),
            on_checkpoint=states.append)
        assert states and all(s.errors is None for s in states)
    with pytest.raises(NeofieldError, match="sampling must be one of error, uniform"):
        fit(make_field(signal, "tiny", segments=1), signal, FitConfig(steps=3, sampling="tiles"))
