"""The ``neofield`` command: a thin Typer layer over :mod:`neofield.codec`.

Every user error becomes one red line on stderr and exit code 1; usage errors
are Typer's (exit 2). Progress and tables go to stderr, so ``--json`` output
(and ``decode -o -``) on stdout stays machine-readable. torch and the codec are
imported inside the commands, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .errors import NeofieldError
from .fields.presets import PRESETS
from .options import bit_depths, parse_sigma, parse_size

if TYPE_CHECKING:
    from .fit import FitProgress

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Compress video, audio or video with sound by fitting a NeoMLP neural field; "
                       "decode it back at any resolution.")


def _console(stderr: bool) -> Console:
    """A console that hard-wraps only on a terminal: in a log or a pipe every
    message stays one line, however long."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=10_000, soft_wrap=True)


err = _console(stderr=True)

# the defaults, repeated here so that --help needs no torch (tests check they agree with codec's)
DEFAULT_EPOCHS, DEFAULT_TIME_BUDGET = 20, 300


def _version(value: bool) -> None:
    if value:
        print(f"neofield {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """neofield: neural-field media codec."""


def _speaks() -> bool:
    """Whether this process talks to the user: always, but under torchrun only rank 0 (the others would
    repeat each line)."""
    return os.environ.get("RANK", "0") == "0"


def data_parallel(device: str) -> bool:
    """Join torchrun's processes for a data-parallel fit (nothing without torchrun; neofield.distributed);
    returns whether this process is rank 0, which reports and writes."""
    from . import distributed

    return distributed.init(device).main


def friendly(fn):
    """Turn NeofieldError (and Ctrl-C) into one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NeofieldError as exc:
            if _speaks():
                err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if _speaks():
                err.print("[bold red]interrupted[/] (no output was written)")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug, not bad input: still one line unless asked
            if os.environ.get("NEOFIELD_DEBUG"):
                raise
            err.print(f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))} "
                      "(set NEOFIELD_DEBUG=1 for a traceback)", highlight=False)
            raise typer.Exit(3) from None

    return wrapper


class FitDisplay:
    """Rich output of an encode: the signal and model, the budget and plan, then
    a live progress bar (on a terminal) or a plain line every 30 s (in a log)."""

    LOG_EVERY = 30.0

    def __init__(self, enabled: bool, batch_size: int):
        self.enabled, self.batch_size, self.points = enabled, batch_size, 1
        self.live = enabled and err.is_terminal
        self.budget: dict = {}
        self.last_log = time.monotonic()
        self.progress = Progress(TextColumn("[bold]fitting"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=err, disable=not self.live)
        self.task = self.progress.add_task("fit", total=None, stats="")

    def on_signal(self, signal, field, budget: dict) -> None:
        self.points, self.budget = signal.n_points, budget
        if not self.enabled:
            return
        n = field.num_parameters()
        err.print(f"[bold]signal[/] {escape(_describe_signal(signal))}")
        if hasattr(field, "latents"):
            err.print(f"[bold]model[/]  NeoMLP {field.config.dim}d x {field.config.layers} layers, "
                      f"{n['total']:,} parameters ({n['backbone']:,} backbone + {n['latents']:,} latents "
                      f"in {len(field.latents)} sets)")
        else:
            from .fields.registry import arch_of

            err.print(f"[bold]model[/]  {arch_of(field)} {field.config.layers} layers of width {field.config.width}, "
                      f"{n['total']:,} parameters (as many as the NeoMLP preset's)")
        err.print(f"[bold]budget[/] {_describe_budget(budget)}")
        self.progress.start()

    def on_progress(self, p: FitProgress) -> None:
        if not self.enabled:
            return
        stats = f"loss {p.loss:.2e}  psnr {p.psnr:5.2f} dB  {p.points_per_second:,.0f} pts/s"
        if p.note:
            self.progress.console.print(f"[bold]note[/]   {escape(p.note)}")
        if p.planned:
            epochs = p.total_steps * self.batch_size / self.points
            self.progress.console.print(
                f"[bold]plan[/]   {p.total_steps:,} steps x {self.batch_size:,} points ({epochs:.2f} epochs); "
                f"measured {p.points_per_second:,.0f} points/s, so about {_duration(p.eta)} to go")
            if p.eta > 600:
                self.progress.console.print(
                    f"[bold yellow]warning:[/] this fit will take about {_duration(p.eta)}; Ctrl-C stops it "
                    "(keeping a checkpoint that --resume continues), --time-budget SECONDS bounds it")
            if self.budget.get("default") and epochs < 1:
                self.progress.console.print(
                    f"[bold yellow]note:[/] the default budget sees each point {epochs:.2f} times: expect a "
                    "rough result; a shorter --duration, a smaller --resize or a longer --time-budget does better")
        self.progress.update(self.task, completed=p.step, total=p.total_steps, stats=stats)
        if not self.live and p.total_steps and time.monotonic() - self.last_log >= self.LOG_EVERY:
            self.last_log = time.monotonic()
            err.print(f"fitting step {p.step:,}/{p.total_steps:,}  {stats}  {_duration(p.elapsed)} elapsed, "
                      f"about {_duration(p.eta)} to go")


class _LogLines:
    """Progress for logs and pipes, where a live bar cannot be drawn: one line every 30 s."""

    EVERY = 30.0

    def __init__(self, what: str, enabled: bool):
        self.what, self.enabled = what, enabled
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last >= self.EVERY:
            self.last = now
            elapsed = now - self.start
            err.print(f"{self.what} {done:,}/{total:,}, {_duration(elapsed)} elapsed, about "
                      f"{_duration(elapsed * (total - done) / max(done, 1))} to go")


Force = Annotated[bool, typer.Option("--force", "-y", help="Overwrite the output if it exists.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
AllowLarge = Annotated[bool, typer.Option("--allow-large", help="Raise every size limit on bundles and decodes "
                                                                "sixteenfold (model size, inflated bytes, "
                                                                "points, memory, time): for bundles you trust.")]


def _limits(allow_large: bool):
    from .schema import DEFAULT_LIMITS, Limits

    return Limits.large() if allow_large else DEFAULT_LIMITS


@app.command()
@friendly
def encode(
    source: Annotated[Path, typer.Argument(help="Video, audio or image file (anything FFmpeg reads).")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="Bundle path \\[default: SOURCE.nf].")] = None,
    preset: Annotated[Optional[str], typer.Option(help=f"Model size: {', '.join(PRESETS)} "
                                                       "\\[default: tiny].")] = None,
    segments: Annotated[Optional[int], typer.Option(help="Latent sets along time \\[default: one per frame, "
                                                         "or per 1,024 audio samples].")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps.")] = None,
    epochs: Annotated[Optional[float], typer.Option(
        help=f"Stop after this many passes over the points \\[default, with no other budget: {DEFAULT_EPOCHS}, "
             f"or {DEFAULT_TIME_BUDGET // 60} minutes if that comes first]."
    )] = None,
    time_budget: Annotated[Optional[float], typer.Option("--time-budget", help="Stop after this many seconds.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate \\[default: the preset's].")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Warm-up steps \\[default: the preset's].")] = None,
    batch_size: Annotated[int, typer.Option(help="Points per step.")] = 1024,  # fit.DEFAULT_BATCH (no torch here)
    attention: Annotated[Optional[str], typer.Option(help="linear (Shen et al.) or softmax.")] = None,
    latents: Annotated[str, typer.Option(help="linear: latent sets blend between their centres, so a decode "
                                              "between frames interpolates; nearest: one set per slice.")] = "linear",
    rff_sigma: Annotated[Optional[str], typer.Option(help="Fourier-feature sigma: one value, or one per input "
                                                          "(x,y,t) e.g. 1,1,60 \\[default: the preset's for pictures; "
                                                          "for sound, its spectral centroid].")] = None,
    audio_share: Annotated[Optional[float], typer.Option(
        help="Fraction of each batch drawn from the sound of a video with sound \\[default: its share of points]."
    )] = None,
    dtype: Annotated[str, typer.Option(help="How weights are stored: quantized (range-coded symbols, finetuned "
                                            "for them; a third of float16's bytes at the same PSNR on the demo), "
                                            "or float16, bfloat16, float32.")] = "quantized",
    bits: Annotated[Optional[float], typer.Option(help="Bit depth of the backbone's weights (1-16; fractional "
                                                       "depths are levels 2**bits) \\[default: 6].")] = None,
    latent_bits: Annotated[Optional[float], typer.Option(help="Bit depth of the latents \\[default: --bits].")] = None,
    size: Annotated[Optional[str], typer.Option(help="Target bundle size, e.g. 20KB, 1.5MB (KB = 1000 bytes): "
                                                     "rate control picks the model width and bit depths.")] = None,
    bitrate: Annotated[Optional[str], typer.Option(help="Target bits per second of the piece, e.g. 300k: a size "
                                                        "target of bitrate x duration.")] = None,
    target_psnr: Annotated[Optional[float], typer.Option("--psnr", help="Target PSNR in dB (video PSNR, or audio "
                                                                        "PSNR for sound): the lowest bit depth that "
                                                                        "meets it.")] = None,
    start: Annotated[float, typer.Option(help="Start of the piece to encode, in seconds.")] = 0.0,
    duration: Annotated[Optional[float], typer.Option(help="Length of the piece, in seconds.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="Encode at most this many frames.")] = None,
    resize: Annotated[Optional[str], typer.Option(help="Encode a resized copy, WIDTHxHEIGHT (as displayed).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and sampling.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="Matmul precision while fitting: float32, bfloat16, or auto "
                                                "(bfloat16 on CUDA and on CPUs with native bfloat16).")] = "auto",
    arch: Annotated[str, typer.Option(help="Architecture: neomlp, or one of the NeoMLP paper's baselines (siren, "
                                           "spder, rffnet) with as many parameters as the NeoMLP preset, to "
                                           "compare on your own media.")] = "neomlp",
    compile_mode: Annotated[str, typer.Option("--compile", help="torch.compile the training step: on, off, or "
                                                                "auto (on a CPU when minutes of fitting are "
                                                                "planned; needs a C++ compiler).")] = "auto",
    checkpoint_every: Annotated[str, typer.Option(
        "--checkpoint-every", help="Write a checkpoint OUTPUT.ckpt this often while fitting: 60, 60s, 5m, or off "
                                   "\\[default: auto: every 60 s when the plan says the fit takes over 2 minutes, "
                                   "off for shorter fits]. Ctrl-C and SIGTERM always write one; it is removed "
                                   "once the bundle is written.", show_default=False)] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the fit from OUTPUT.ckpt (left by an "
                                                          "interrupted encode) instead of starting over; give the "
                                                          "same options.")] = False,
    save_on_interrupt: Annotated[bool, typer.Option("--save-on-interrupt", help="On Ctrl-C or SIGTERM also write "
                                                                                "the bundle of the field as it is "
                                                                                "(best so far; the checkpoint is "
                                                                                "kept too).")] = False,
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Fit a neural field to SOURCE and store it as a small .nf bundle.

    Without --steps, --epochs or --time-budget the fit stops after 20 epochs or
    5 minutes, whichever comes first; the plan is printed before it starts.
    Ctrl-C or SIGTERM stops the fit with a checkpoint; --resume continues it.
    Under torchrun (`torchrun --nproc-per-node N -m neofield encode ...`) the
    fit is data-parallel over N processes; rank 0 writes.
    """
    from . import codec
    from .media import Selection

    if not data_parallel(device):
        quiet, as_json = True, False

    selection = Selection(start, duration, max_frames, parse_size(resize, "--resize") if resize else None)
    display = FitDisplay(enabled=not quiet, batch_size=batch_size)
    try:
        report = codec.encode(source, output, selection=selection, preset=preset, segments=segments, lr=lr,
                              warmup_steps=warmup, batch_size=batch_size, steps=steps, epochs=epochs,
                              time_budget=time_budget, attention=attention, latents=latents,
                              precision=precision, arch=arch, compile_mode=compile_mode,
                              rff_sigma=parse_sigma(rff_sigma),
                              audio_share=audio_share, weights_dtype=dtype, bits=bit_depths(bits, latent_bits),
                              size=size, bitrate=bitrate, target_psnr=target_psnr,
                              seed=seed, device=device, force=force,
                              callback=display.on_progress, on_signal=display.on_signal,
                              checkpoint_every=checkpoint_every, resume=resume, save_on_interrupt=save_on_interrupt)
    except codec.EncodeInterrupted as stop:
        display.progress.stop()
        if _speaks():
            err.print(f"[bold red]interrupted[/] {escape(stop.details)}", highlight=False)
        raise typer.Exit(130) from None
    finally:
        display.progress.stop()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    elif not quiet:
        err.print(f"[bold green]wrote[/] {escape(str(report.path))} ({report.bytes:,} bytes) in "
                  f"{report.fit.seconds:.1f} s of fitting; {_describe_quality(report.quality)}")
    if report.target and not as_json:
        t = report.target
        if not quiet:
            err.print(f"target {t['asked']}: {t['bytes']:,} bytes at {t['bits']['backbone']:g} bits"
                      + (f", model width {t['width']}" if t.get("width") else ""))
        for note in t["notes"]:
            err.print(f"[yellow]note[/] {escape(note)}")


@app.command()
@friendly
def decode(
    bundle: Annotated[Path, typer.Argument(help="A .nf bundle.")],
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="Output; its name picks the format: .mp4 .mov .mkv .webm .gif, .wav .flac .ogg "
                               ".opus .m4a .mp3, .png/.jpg with --frame, frames/%05d.png for every frame, "
                               "or - for standard output \\[default: BUNDLE.decoded.mp4/.wav/.png].")] = None,
    scale: Annotated[float, typer.Option(help="Resample every axis by this factor: width, height, frame rate "
                                              "and sample rate (see --scale-time, --scale-rate).")] = 1.0,
    scale_time: Annotated[Optional[float], typer.Option(
        help="Frame-rate factor apart from --scale (e.g. --scale 2 --scale-time 1: twice the size, same rate).")
    ] = None,
    scale_rate: Annotated[Optional[float], typer.Option(help="Sample-rate factor apart from --scale.")] = None,
    size: Annotated[Optional[str], typer.Option(help="Frame size WIDTHxHEIGHT (overrides --scale).")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate (overrides --scale).")] = None,
    sample_rate: Annotated[Optional[int], typer.Option(help="Audio rate in Hz (overrides --scale).")] = None,
    start: Annotated[Optional[float], typer.Option(help="Decode from this time, in seconds.")] = None,
    end: Annotated[Optional[float], typer.Option(help="Decode up to this time, in seconds.")] = None,
    frame: Annotated[Optional[float], typer.Option(help="Write the one frame at this time (seconds) as a "
                                                        "picture (-o still.png).")] = None,
    codec_name: Annotated[Optional[str], typer.Option(
        "--codec", help="Video codec: h264, h265, vp9, av1, ffv1 \\[default: h264; vp9 for .webm].")] = None,
    crf: Annotated[Optional[float], typer.Option(help="Constant quality of the video codec (lower is better) "
                                                      "\\[default: 18 for h264].")] = None,
    lossless: Annotated[bool, typer.Option(help="Exact RGB video (H.264 RGB, qp 0) + FLAC: the file used for "
                                                "measurement; FFmpeg-based players show it right, browsers "
                                                "do not (Chromium shows false colours).")] = False,
    format: Annotated[Optional[str], typer.Option(help="Format for -o - (standard output): mkv, webm, mp4, "
                                                       "wav, flac, … \\[default: mkv, or wav for sound].")] = None,
    compile_mode: Annotated[str, typer.Option("--compile", help="torch.compile the field: on, off, or auto (on a "
                                                                "CPU when rendering would take 30 s or more; "
                                                                "needs a C++ compiler).")] = "auto",
    item: Annotated[Optional[str], typer.Option(help="The signal of a set bundle (neofield set fit) to render: "
                                                     "its index or its name.")] = None,
    allow_large: AllowLarge = False,
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Render a bundle at any resolution and write real media.

    The cost (points, memory, time at a speed measured here) is checked against
    the limits before anything is rendered, and printed.
    """
    from . import codec

    progress = Progress(TextColumn("[bold]decoding"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err,
                        disable=quiet or not err.is_terminal, transient=True)
    task = progress.add_task("decode", total=None)
    log = _LogLines("decoded points", enabled=not quiet and not err.is_terminal)

    def on_plan(cost) -> None:
        if not quiet and not as_json and (cost.seconds >= 10 or cost.compiled):
            err.print(f"[bold]plan[/]   {cost.points:,} points, about {_duration(cost.seconds)} at "
                      f"{cost.speed:,.0f} points/s"
                      + (" once compiled (compiling takes ~15 s)" if cost.compiled else "")
                      + f"; {cost.memory_bytes / 2**20:,.0f} MiB at most")

    def on_progress(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)
        log(done, total)

    with progress:
        report = codec.decode(bundle, output, scale=scale, scale_time=scale_time, scale_rate=scale_rate,
                              size=parse_size(size, "--size") if size else None, fps=fps, sample_rate=sample_rate,
                              start=start, end=end, frame=frame, codec=codec_name, crf=crf, lossless=lossless,
                              format=format, force=force, compile_mode=compile_mode, limits=_limits(allow_large),
                              item=item, on_plan=on_plan, on_progress=on_progress)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2), file=sys.stderr if report.path is None else sys.stdout)
    elif not quiet:
        for note in report.notes:
            err.print(f"[bold yellow]note:[/] {escape(note)}")
        where = "standard output" if report.path is None else escape(str(report.path))
        err.print(f"[bold green]wrote[/] {where} ({_describe_grid(report.plan)}; {report.bytes:,} bytes"
                  + (f" in {report.files:,} files)" if report.files > 1 else ")"))


@app.command()
@friendly
def psnr(
    original: Annotated[Path, typer.Argument(help="The original media file.")],
    candidate: Annotated[Path, typer.Argument(help="A .nf bundle, or a decoded media file of the same grid.")],
    start: Annotated[Optional[float], typer.Option(help="Cut the original from here (media candidates).")] = None,
    duration: Annotated[Optional[float], typer.Option(help="Length of the cut, seconds.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="At most this many frames of the original.")] = None,
    resize: Annotated[Optional[str], typer.Option(help="Resize the original to WIDTHxHEIGHT first.")] = None,
    allow_large: AllowLarge = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout, with the PSNR "
                                                         "and SSIM of every frame.")] = False,
) -> None:
    """Reconstruction quality: PSNR, SSIM / SNR per modality, size, bits per pixel or kbps.

    Video PSNR = 10 log10(255^2 / MSE) over all 8-bit RGB values, SSIM on luma;
    audio PSNR = 10 log10(2^2 / MSE) with samples in [-1, 1], and SNR, which
    does not flatter quiet sound. A bundle, or a file neofield decoded, is
    compared on the piece it was encoded from: no options needed.
    """
    from . import codec
    from .media import Selection

    selection = None
    if any(v is not None for v in (start, duration, max_frames, resize)):
        selection = Selection(start or 0.0, duration, max_frames, parse_size(resize, "--resize") if resize else None)
    report = codec.psnr(original, candidate, selection, per_frame=as_json, limits=_limits(allow_large))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    for key, value in report.items():
        label, unit = LABELS.get(key, (key, ""))
        text = f"{value:,.4f}" if key.endswith("ssim") else f"{value:,.2f}" if isinstance(value, float) \
            else f"{value:,}"
        table.add_row(label, text + unit)
    _console(stderr=False).print(table)


LABELS = {
    "video_psnr_db": ("video PSNR (RGB, peak 255)", " dB"), "video_ssim": ("video SSIM (luma)", ""),
    "audio_psnr_db": ("audio PSNR ([-1, 1], peak-to-peak 2)", " dB"), "audio_snr_db": ("audio SNR", " dB"),
    "audio_segmental_snr_db": ("audio segmental SNR (20 ms)", " dB"),
    "field_video_psnr_db": ("video PSNR of the field itself (bundle)", " dB"),
    "field_audio_psnr_db": ("audio PSNR of the field itself (bundle)", " dB"),
    "video_output_loss_db": ("video PSNR lost to this file's codec", " dB"),
    "audio_output_loss_db": ("audio PSNR lost to this file's codec", " dB"),
    "bytes": ("bundle bytes", ""), "bytes_backbone": ("  of which backbone weights", ""),
    "bytes_latents": ("  of which latents", ""), "bytes_side": ("  of which metadata and headers", ""), "bits_per_pixel": ("bits per pixel", ""), "kbps": ("kbps", ""),
    "raw_bytes": ("raw bytes (8-bit RGB / 16-bit PCM)", ""), "compression_ratio": ("compression ratio", ""),
}


@app.command()
@friendly
def info(
    bundle: Annotated[Path, typer.Argument(help="A .nf bundle.")],
    allow_large: AllowLarge = False,
    as_json: Json = False,
) -> None:
    """Show what a bundle holds: geometry, model, fit and quality."""
    from .bundle import load, stored_bytes

    limits = _limits(allow_large)
    b = load(bundle, limits)  # a set bundle too, whole
    meta = dict(b.meta)
    meta["bytes"] = bundle.stat().st_size
    meta["stored_bytes"] = stored_bytes(bundle.read_bytes(), limits)
    meta["parameters"] = b.field.num_parameters()
    if as_json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return
    out = _console(stderr=False)
    say = functools.partial(out.print, markup=False, highlight=False)  # every string here comes from the file
    geo = meta["geometry"]
    say(f"{bundle}: {meta['modality']}, {meta['bytes']:,} bytes, format v{meta['format_version']} "
        f"(neofield {meta.get('neofield_version', 'unknown')})")
    if "video" in geo:
        v = geo["video"]
        extra = "".join([f", shown rotated {v['rotation']} degrees in the source" if v.get("rotation") else "",
                         f", pixel aspect {v['sample_aspect_ratio'][0]}:{v['sample_aspect_ratio'][1]}"
                         if v.get("sample_aspect_ratio") else "",
                         ", variable-rate source resampled" if v.get("vfr") else ""])
        say(f"  video  {v['width']}x{v['height']}, {v['frames']} frames at {v['fps']:g} fps{extra}")
    if "audio" in geo:
        a = geo["audio"]
        say(f"  audio  {a['channels']} ch at {a['sample_rate']} Hz, {a['samples']:,} samples")
    say(f"  length {geo['duration']:.3f} s, from {meta['source']['name']}")
    if "collection" in meta:
        col = meta["collection"]
        classes = f", {len(col['classes'])} classes" if col.get("classes") else ""
        say(f"  set    {col['items']:,} signals of this grid over one backbone, {col['segments_per_item']} latent "
            f"set{'s' if col['segments_per_item'] > 1 else ''} each{classes} (decode one with --item)")
    for line in _describe_model(meta):
        say(line)
    split = meta["stored_bytes"]
    if meta["weights_dtype"] == "quantized":
        bits = (meta.get("quantization") or {}).get("bits") or {}
        how = (f"quantized to {bits['backbone']:g} bits (backbone) and {bits['latents']:g} bits (latents), "
               "range coded") if {"backbone", "latents"} <= set(bits) else "quantized, range coded"
    else:
        how = f"{meta['weights_dtype']}, zstd (shares estimated)"
    say(f"  bytes  {split['backbone']:,} backbone + {split['latents']:,} latents + {split['side']:,} metadata "
        f"and headers; {how}")
    fit = meta.get("fit", {})
    if {"steps", "seconds", "points_per_second"} <= set(fit):
        say(f"  fit    {fit['steps']:,} steps in {fit['seconds']:.1f} s ({fit['points_per_second']:,.0f} points/s)")
    if meta.get("quality"):
        say(f"  quality {_describe_quality(meta['quality'])}")


def _describe_model(meta: dict) -> list[str]:
    """``info``'s lines on the model: NeoMLP with its latent sets, or one of the paper's baselines."""
    model, n = meta["model"], meta["parameters"]
    cfg, arch = model["config"], model.get("type", "neomlp")
    sigma = cfg.get("rff_sigma")
    sigma = "/".join(f"{v:.3g}" for v in (sigma if isinstance(sigma, list) else [sigma])) if sigma else ""
    stored = f"stored as {meta['weights_dtype']}"
    if arch != "neomlp":
        name = {"siren": "SIREN", "spder": "SPDER", "rffnet": "RFF-MLP"}[arch]
        extra = f"w0 {cfg['w0']:g}" if "w0" in cfg else f"RFF {cfg['rff_dim']} (sigma {sigma})"
        return [f"  model  {name}: {cfg['layers']} layers of width {cfg['width']}, {extra}",
                f"         {n['total']:,} parameters, {stored}"]
    seg = model["segmentation"]
    return [f"  model  NeoMLP preset {meta.get('preset')}: D {cfg['dim']}, {cfg['layers']} layers, "
            f"{cfg['heads']} heads, {cfg['attention']} attention, RFF {cfg['rff_dim']} "
            f"(sigma {sigma}), {cfg['hidden_tokens']} hidden tokens",
            f"         {n['total']:,} parameters ({n['backbone']:,} backbone + {n['latents']:,} latents in "
            f"{seg['segments']} sets, {seg.get('interpolation', 'nearest')} in time), {stored}"]


def _describe_quality(quality: dict) -> str:
    parts = []
    if "video_psnr_db" in quality:
        parts.append(f"video PSNR {quality['video_psnr_db']:.2f} dB"
                     + (f", SSIM {quality['video_ssim']:.4f}" if "video_ssim" in quality else "")
                     + (f" (on {quality['video_frames_measured']} evenly spaced frames; `neofield psnr` "
                        "measures all)" if "video_frames_measured" in quality else ""))
    if "audio_psnr_db" in quality:
        parts.append(f"audio PSNR {quality['audio_psnr_db']:.2f} dB"
                     + (f", SNR {quality['audio_snr_db']:.2f} dB" if "audio_snr_db" in quality else ""))
    if "mean_psnr_db" in quality:  # a set: over its signals
        parts.append(f"PSNR {quality['mean_psnr_db']:.2f} dB on average over the signals"
                     + (f" (lowest {quality['min_psnr_db']:.2f})" if "min_psnr_db" in quality else ""))
    return "; ".join(parts)


def _describe_budget(budget: dict) -> str:
    rules = []
    if budget.get("steps") is not None:
        rules.append(f"{budget['steps']:,} steps")
    if budget.get("epochs") is not None:
        rules.append(f"{budget['epochs']:g} epochs")
    if budget.get("time_budget") is not None:
        rules.append(_duration(budget["time_budget"]))
    text = " or ".join(rules) + (", whichever comes first" if len(rules) > 1 else "")
    if budget.get("default"):
        text += " (the default; set --steps, --epochs or --time-budget to change it)"
    return text


def _describe_signal(signal) -> str:
    parts = []
    if signal.video is not None:
        f, h, w, _ = signal.video.shape
        parts.append(f"{w}x{h}" + ("" if signal.media.still else f", {f} frames at {signal.fps:g} fps"))
    if signal.audio is not None:
        parts.append(f"{signal.audio_channels} ch audio at {signal.sample_rate} Hz")
    return f"{signal.kind}: " + " + ".join(parts) + f" ({signal.n_points:,} points, {signal.duration:.2f} s)"


def _describe_grid(plan) -> str:
    parts = []
    if plan.video is not None:
        v = plan.video
        parts.append(f"{v.width}x{v.height}, {v.frames} frame{'s' * (v.frames != 1)} at {v.fps:g} fps")
    if plan.audio is not None:
        parts.append(f"{plan.audio.samples:,} samples at {plan.audio.sample_rate} Hz")
    return " + ".join(parts)


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


from .sets.cli import app as _set_app  # noqa: E402  (it reads this module's helpers, defined above)

app.add_typer(_set_app, name="set")


def _terminate(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary outputs are removed and nothing half-written stays."""
    raise KeyboardInterrupt


def run() -> None:  # console-script entry point
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="neofield")


if __name__ == "__main__":
    sys.exit(run())
