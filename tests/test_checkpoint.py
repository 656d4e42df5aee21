"""Checkpoints: a stopped fit goes on exactly where it stopped, and nothing else is taken for one."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from neofield import bundle, checkpoint, codec
from neofield.codec import make_field
from neofield.errors import NeofieldError
from neofield.fit import FitConfig, FitInterrupted, fit
from neofield.media import read_media
from neofield.qat import QuantizationAware
from neofield.signal import Signal

# long enough that a SIGTERM sent when the plan is printed (step 10) lands mid-fit, short enough to resume in a second
CLI_FIT = ["--steps", "400", "--batch-size", "256", "--device", "cpu", "--compile", "off", "--checkpoint-every", "off"]


def flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def encode_and_terminate(source, out, *extra):
    """Start a CLI encode, send it SIGTERM once its plan is printed (the fit is running), and wait."""
    proc = subprocess.Popen([sys.executable, "-m", "neofield", "encode", str(source), "-o", str(out), *CLI_FIT,
                             *extra], stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("plan") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=120)
    return proc.returncode, "".join(lines) + rest


def encode_cli(source, out, *extra):
    return subprocess.run([sys.executable, "-m", "neofield", "encode", str(source), "-o", str(out), *CLI_FIT, *extra],
                          capture_output=True, text=True, timeout=300)


def last_line(stderr):
    return [line for line in stderr.splitlines() if line.strip()][-1]


@pytest.fixture(scope="module")
def interrupted(tiny_clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("interrupted")
    code, stderr = encode_and_terminate(tiny_clip, folder / "clip.nf")
    return folder, code, stderr


def copy_checkpoint(interrupted, tmp_path):
    folder, _, _ = interrupted
    shutil.copy(folder / "clip.nf.ckpt", tmp_path / "clip.nf.ckpt")
    return tmp_path / "clip.nf"


def test_a_resumed_fit_ends_on_the_very_weights_of_one_never_stopped(tiny_clip, tmp_path):
    signal_ = Signal(read_media(tiny_clip))

    def config(field, **kw):  # finetuning (with its noise drawn from the sampler) starts at step 24, before the stop
        levels = {name: 16 for name, _ in field.named_parameters()}
        return FitConfig(steps=60, batch_size=256, seed=2, device="cpu", precision="float32", compile="off",
                         warmup_steps=10, quantization=QuantizationAware(levels, fraction=0.6, mode="noise"), **kw)

    plain = make_field(signal_, "tiny", segments=2, seed=2)
    fit(plain, signal_, config(plain))
    whole, states = make_field(signal_, "tiny", segments=2, seed=2), []
    fit(whole, signal_, config(whole, checkpoint_every=1e-9), on_checkpoint=states.append)  # one after every step
    assert torch.equal(flat(whole), flat(plain))  # taking checkpoints changes nothing
    at_30 = next(s for s in states if s.step == 30)
    assert at_30.levels is not None and at_30.q_start == 24 and at_30.errors is not None  # drawn by its error
    path = checkpoint.save(tmp_path / "x.nf.ckpt", at_30, {"what": "test"})

    resumed, notes = make_field(signal_, "tiny", segments=2, seed=2), []  # same seed: the RFF matrix is not stored
    with torch.no_grad():
        for p in resumed.parameters():
            p.add_(1.0)  # other starting weights: the checkpoint's must win
    result = fit(resumed, signal_, config(resumed), resume=checkpoint.load(path).state,
                 callback=lambda p: p.note and notes.append(p.note))
    assert result.steps == 60 and notes == ["resuming from step 30 of 60"]
    assert torch.equal(flat(resumed), flat(whole))


def test_a_resumed_rate_controlled_encode_writes_the_same_field(tiny_clip, tmp_path):
    options = dict(steps=120, batch_size=256, size="5KB", device="cpu", precision="float32", compile_mode="off",
                   evaluate=False, checkpoint_every="off")
    codec.encode(tiny_clip, tmp_path / "whole.nf", **options)

    def terminate_at_110(p):  # inside finetuning (from step 108), whose depth rate control chose at its start
        if p.step == 110:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(codec.EncodeInterrupted) as stop:
        codec.encode(tiny_clip, tmp_path / "cut.nf", callback=terminate_at_110, **options)
    assert stop.value.step == 110 and stop.value.checkpoint == tmp_path / "cut.nf.ckpt"
    assert not (tmp_path / "cut.nf").exists()
    assert checkpoint.load(tmp_path / "cut.nf.ckpt").extra["rate_control"]["bits"] is not None
    codec.encode(tiny_clip, tmp_path / "cut.nf", resume=True, **options)
    assert not (tmp_path / "cut.nf.ckpt").exists()
    a, b = bundle.load(tmp_path / "whole.nf"), bundle.load(tmp_path / "cut.nf")
    assert a.meta["model"] == b.meta["model"] and a.meta["quantization"] == b.meta["quantization"]
    assert all(torch.equal(x, y) for x, y in zip(a.field.state_dict().values(), b.field.state_dict().values(), strict=True))


def test_sigterm_leaves_a_checkpoint_and_no_partial_bundle(interrupted):
    folder, code, stderr = interrupted
    assert code == 130, stderr
    line = last_line(stderr)
    assert line.startswith("interrupted at step ") and line.endswith(
        f"of 400; checkpoint written to {folder / 'clip.nf.ckpt'}; resume with --resume"), line
    assert "Traceback" not in stderr
    assert sorted(p.name for p in folder.iterdir()) == ["clip.nf.ckpt"]  # no bundle, no temporary file


def test_resume_completes_the_interrupted_encode(interrupted, tiny_clip, tmp_path):
    out = copy_checkpoint(interrupted, tmp_path)
    step = checkpoint.load(out.with_name("clip.nf.ckpt")).state.step
    assert 10 <= step < 400
    result = encode_cli(tiny_clip, out, "--resume")
    assert result.returncode == 0, result.stderr
    assert f"resuming from step {step:,} of 400" in result.stderr
    assert bundle.load(out).meta["fit"]["steps"] == 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.nf"]  # the checkpoint went with the success


def test_a_checkpoint_from_other_options_is_refused_in_one_line(interrupted, tiny_clip, tmp_path):
    out = copy_checkpoint(interrupted, tmp_path)
    result = encode_cli(tiny_clip, out, "--resume", "--lr", "0.003")  # neogrid's own is 0.01
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is from another encode: --lr" in lines[0], result.stderr
    assert (tmp_path / "clip.nf.ckpt").exists() and not out.exists()  # refused, not overwritten


def test_a_checkpoint_whose_latent_scales_do_not_fit_the_table_is_refused_in_one_line(interrupted, tiny_clip,
                                                                                     tmp_path):
    out = copy_checkpoint(interrupted, tmp_path)
    path = out.with_name("clip.nf.ckpt")
    payload = torch.load(path, weights_only=True)
    assert payload["state"]["scales"].ndim == 3  # priced in context: a scale and a centre per latent
    payload["state"]["scales"] = payload["state"]["scales"][:, :-1]
    torch.save(payload, path)
    result = encode_cli(tiny_clip, out, "--resume")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "latents' scales are of another shape" in last_line(result.stderr) and not out.exists()


def test_a_checkpoint_whose_error_map_does_not_fit_the_clip_is_refused_in_one_line(interrupted, tiny_clip, tmp_path):
    out = copy_checkpoint(interrupted, tmp_path)
    path = out.with_name("clip.nf.ckpt")
    payload = torch.load(path, weights_only=True)
    assert payload["state"]["errors"].shape == (4 * 2 * 4,)  # 4 frames of 32x14 in tiles of 8x8
    payload["state"]["errors"] = payload["state"]["errors"][:-1]
    torch.save(payload, path)
    result = encode_cli(tiny_clip, out, "--resume")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "does not fit this model (an error map of (31,), not (32,))" in last_line(result.stderr)
    assert not out.exists()


def test_a_checkpoint_of_other_media_is_refused(interrupted, tiny_sound, tmp_path):
    out = copy_checkpoint(interrupted, tmp_path)
    with pytest.raises(NeofieldError, match="is from another encode: the source"):
        codec.encode(tiny_sound, out, steps=400, batch_size=256, device="cpu", compile_mode="off",
                     checkpoint_every="off", resume=True)


def test_a_corrupt_checkpoint_is_one_line(interrupted, tmp_path):
    out = copy_checkpoint(interrupted, tmp_path)
    path = out.with_name("clip.nf.ckpt")
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], b"not a checkpoint", b""):
        path.write_bytes(damaged)
        with pytest.raises(NeofieldError) as failure:
            checkpoint.load(path)
        assert "\n" not in str(failure.value) and "checkpoint" in str(failure.value)


def test_a_checkpoint_with_a_steered_lambda_or_an_error_map_of_the_wrong_type_is_refused(interrupted, tmp_path):
    path = copy_checkpoint(interrupted, tmp_path).with_name("clip.nf.ckpt")
    payload = torch.load(path, weights_only=True)
    for lam, scales, errors in ((-1.0, None, None), ("0.1", None, None), (0.1, torch.ones(2, 2), None),
                                (0.1, torch.ones(2, 2, 2, 2), None), (0.1, [1.0], None), (0.1, None, [1.0]),
                                (0.1, None, torch.ones(2, 2)), (0.1, None, torch.ones(2, dtype=torch.long))):
        payload["state"].update(lam=lam, scales=scales, errors=errors)
        torch.save(payload, path)
        with pytest.raises(NeofieldError, match="damaged|wrong type"):
            checkpoint.load(path)
    payload["state"].update(lam=0.1, scales=torch.ones(3), errors=torch.ones(3))
    torch.save(payload, path)
    assert checkpoint.load(path).state.lam == 0.1


def test_a_checkpoint_never_unpickles_objects(tmp_path):
    path = tmp_path / "evil.nf.ckpt"
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "payload": Exploding()}, path)
    with pytest.raises(NeofieldError, match="is not a readable neofield checkpoint"):
        checkpoint.load(path)
    assert not Exploding.ran


class Exploding:
    ran = False

    def __reduce__(self):
        return (Exploding._run, ())

    @staticmethod
    def _run():
        Exploding.ran = True


def test_resume_without_a_checkpoint_and_a_stale_one_without_resume_are_refused(tiny_clip, tmp_path):
    with pytest.raises(NeofieldError, match="there is no checkpoint .*clip.nf.ckpt to resume from"):
        codec.encode(tiny_clip, tmp_path / "clip.nf", steps=5, device="cpu", resume=True)
    (tmp_path / "clip.nf.ckpt").write_bytes(b"left by an interrupted encode")
    with pytest.raises(NeofieldError, match="holds an interrupted encode: add --resume"):
        codec.encode(tiny_clip, tmp_path / "clip.nf", steps=5, device="cpu")


def test_save_on_interrupt_writes_a_valid_bundle(tiny_clip, tmp_path):
    code, stderr = encode_and_terminate(tiny_clip, tmp_path / "clip.nf", "--save-on-interrupt")
    assert code == 130, stderr
    line = last_line(stderr)
    assert f"best-so-far bundle written to {tmp_path / 'clip.nf'}" in line and "--resume --force" in line, line
    b = bundle.load(tmp_path / "clip.nf")
    assert b.meta["fit"]["interrupted"] is True and 10 <= b.meta["fit"]["steps"] < 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.nf", "clip.nf.ckpt"]


def test_an_interrupt_in_process_raises_with_the_state_and_restores_the_handlers(tiny_clip):
    signal_ = Signal(read_media(tiny_clip))
    field = make_field(signal_, "tiny", segments=1)
    before = signal.getsignal(signal.SIGTERM)
    written = []

    def terminate_at_20(p):
        if p.step == 20:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(FitInterrupted) as stop:
        fit(field, signal_, FitConfig(steps=100, batch_size=128, device="cpu", compile="off"), terminate_at_20,
            on_checkpoint=written.append)
    assert stop.value.state.step == 20 and stop.value.checkpointed and [s.step for s in written] == [20]
    assert signal.getsignal(signal.SIGTERM) is before


def test_periodic_checkpoints_are_written_while_fitting_and_removed_with_the_bundle(tiny_clip, tmp_path):
    seen = {}

    def look(name):
        def callback(p):
            if p.step == 20:
                path = tmp_path / f"{name}.nf.ckpt"
                seen[name] = checkpoint.load(path).state.step if path.exists() else None
        return callback

    options = {"steps": 30, "batch_size": 128, "device": "cpu", "compile_mode": "off", "evaluate": False}
    codec.encode(tiny_clip, tmp_path / "often.nf", checkpoint_every=1e-9, callback=look("often"), **options)
    codec.encode(tiny_clip, tmp_path / "auto.nf", callback=look("auto"), **options)  # a short fit: none
    assert seen == {"often": 19, "auto": None}  # taken at the top of step 20, before its report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto.nf", "often.nf"]


def test_a_second_signal_stops_mid_step_and_keeps_the_last_snapshot(tiny_clip):
    class TwoSignals(torch.nn.Module):  # Ctrl-C pressed twice in the middle of step 150's forward pass
        def __init__(self, field):
            super().__init__()
            self.field, self.calls = field, 0

        def forward(self, coords):
            self.calls += 1
            if self.calls == 150:
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)
            return self.field(coords)

    signal_ = Signal(read_media(tiny_clip))
    model, written = TwoSignals(make_field(signal_, "tiny", segments=1)), []
    with pytest.raises(FitInterrupted) as stop:
        fit(model, signal_, FitConfig(steps=300, batch_size=128, device="cpu", compile="off"),
            on_checkpoint=written.append)
    assert stop.value.state.step == 100 and [s.step for s in written] == [100]  # the snapshot, whole
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stop.value.state.field.items())


@pytest.mark.parametrize("text, seconds", [("60", 60.0), ("60s", 60.0), ("5m", 300.0), ("1.5h", 5400.0),
                                           ("off", None), (None, None), (30, 30.0)])
def test_checkpoint_intervals(text, seconds):
    assert checkpoint.resolve_interval(text)[0] == seconds
    assert checkpoint.resolve_interval("auto") == (checkpoint.DEFAULT_EVERY, checkpoint.DEFAULT_MIN_FIT)
    for bad in ("0", "-5s", "soon", "nan"):
        with pytest.raises(NeofieldError, match="--checkpoint-every"):
            checkpoint.resolve_interval(bad)
