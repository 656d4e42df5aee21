"""The ``neofield`` command: a thin Typer layer over :mod:`neofield.codec`.

Every user error becomes one red line on stderr and exit code 1; usage errors
are Typer's (exit 2). Progress and tables go to stderr, so ``--json`` output
on stdout stays machine-readable.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__, codec
from .errors import NeofieldError
from .fields.neomlp import PRESETS
from .fit import FitProgress
from .media import Selection, parse_size

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Compress video, audio or video with sound by fitting a NeoMLP neural field; "
                       "decode it back at any resolution.")
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"neofield {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """neofield: neural-field media codec."""


def friendly(fn):
    """Turn NeofieldError (and Ctrl-C) into one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NeofieldError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/] (no output was written)")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug, not bad input: still one line unless asked
            if os.environ.get("NEOFIELD_DEBUG"):
                raise
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                      "(set NEOFIELD_DEBUG=1 for a traceback)", highlight=False, soft_wrap=True)
            raise typer.Exit(3) from None

    return wrapper


class FitDisplay:
    """Rich output of an encode: the signal and model, the plan, then a live progress bar."""

    def __init__(self, enabled: bool, batch_size: int):
        self.enabled, self.batch_size, self.points = enabled, batch_size, 1
        self.progress = Progress(TextColumn("[bold]fitting"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=err, disable=not enabled)
        self.task = self.progress.add_task("fit", total=None, stats="")

    def on_signal(self, signal, field) -> None:
        self.points = signal.n_points
        if not self.enabled:
            return
        n = field.num_parameters()
        err.print(f"[bold]signal[/] {_describe_signal(signal)}")
        err.print(f"[bold]model[/]  NeoMLP {field.config.dim}d x {field.config.layers} layers, "
                  f"{n['total']:,} parameters ({n['backbone']:,} backbone + {n['latents']:,} latents "
                  f"in {len(field.latents)} sets)")
        self.progress.start()

    def on_progress(self, p: FitProgress) -> None:
        if p.planned and self.enabled:
            epochs = p.total_steps * self.batch_size / self.points
            self.progress.console.print(
                f"[bold]plan[/]   {p.total_steps:,} steps x {self.batch_size:,} points ({epochs:.1f} epochs); "
                f"measured {p.points_per_second:,.0f} points/s, so about {_duration(p.eta)} to go")
        self.progress.update(self.task, completed=p.step, total=p.total_steps,
                             stats=f"loss {p.loss:.2e}  psnr {p.psnr:5.2f} dB  {p.points_per_second:,.0f} pts/s")


Force = Annotated[bool, typer.Option("--force", "-y", help="Overwrite the output if it exists.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


@app.command()
@friendly
def encode(
    source: Annotated[Path, typer.Argument(help="Video, audio or image file (anything FFmpeg reads).")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="Bundle path \\[default: SOURCE.nf].")] = None,
    preset: Annotated[Optional[str], typer.Option(help=f"Model size: {', '.join(PRESETS)} "
                                                       "\\[default: small for audio, tiny otherwise].")] = None,
    segments: Annotated[Optional[int], typer.Option(help="Latent sets along time \\[default: one per frame, "
                                                         "or per 1,024 audio samples].")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps.")] = None,
    epochs: Annotated[Optional[float], typer.Option(
        help=f"Stop after this many passes over the points \\[default: {codec.DEFAULT_EPOCHS} if nothing else is set]."
    )] = None,
    time_budget: Annotated[Optional[float], typer.Option("--time-budget", help="Stop after this many seconds.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate \\[default: the preset's].")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Warm-up steps \\[default: the preset's].")] = None,
    batch_size: Annotated[int, typer.Option(help="Points per step.")] = 4096,
    attention: Annotated[Optional[str], typer.Option(help="linear (Shen et al.) or softmax.")] = None,
    rff_sigma: Annotated[Optional[str], typer.Option(help="Fourier-feature sigma: one value, or one per input "
                                                          "(x,y,t) e.g. 1,1,60 \\[default: the preset's].")] = None,
    audio_share: Annotated[Optional[float], typer.Option(
        help="Fraction of each batch drawn from the sound of a video with sound \\[default: its share of points]."
    )] = None,
    dtype: Annotated[str, typer.Option(help="Weight precision in the bundle: float16, bfloat16, float32.")] = "float16",
    start: Annotated[float, typer.Option(help="Start of the piece to encode, in seconds.")] = 0.0,
    duration: Annotated[Optional[float], typer.Option(help="Length of the piece, in seconds.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="Encode at most this many frames.")] = None,
    resize: Annotated[Optional[str], typer.Option(help="Encode a resized copy, WIDTHxHEIGHT.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and sampling.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    force: Force = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    as_json: Json = False,
) -> None:
    """Fit a neural field to SOURCE and store it as a small .nf bundle."""
    if attention is not None and attention not in ("linear", "softmax"):
        raise NeofieldError("--attention must be linear or softmax")
    selection = Selection(start, duration, max_frames, parse_size(resize) if resize else None)
    display = FitDisplay(enabled=not quiet, batch_size=batch_size)
    try:
        report = codec.encode(source, output, selection=selection, preset=preset, segments=segments, lr=lr,
                              warmup_steps=warmup, batch_size=batch_size, steps=steps, epochs=epochs,
                              time_budget=time_budget, attention=attention, rff_sigma=_parse_sigma(rff_sigma),
                              audio_share=audio_share,
                              weights_dtype=dtype, seed=seed, device=device, force=force,
                              callback=display.on_progress, on_signal=display.on_signal)
    finally:
        display.progress.stop()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    elif not quiet:
        q = "  ".join(f"{k.replace('_psnr_db', '')} {v:.2f} dB" for k, v in report.quality.items())
        err.print(f"[bold green]wrote[/] {report.path} ({report.bytes:,} bytes) in {report.fit.seconds:.1f} s "
                  f"of fitting; PSNR {q}")


@app.command()
@friendly
def decode(
    bundle: Annotated[Path, typer.Argument(help="A .nf bundle.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output media; its suffix picks the "
                                                   "format (.mp4 .mkv .mov .wav .flac .ogg .png) "
                                                   "\\[default: BUNDLE.decoded.mp4/.wav/.png].")] = None,
    scale: Annotated[float, typer.Option(help="Resample every axis by this factor (width, height, frame "
                                              "rate, sample rate).")] = 1.0,
    size: Annotated[Optional[str], typer.Option(help="Frame size WIDTHxHEIGHT (overrides --scale).")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate (overrides --scale).")] = None,
    sample_rate: Annotated[Optional[int], typer.Option(help="Audio rate in Hz (overrides --scale).")] = None,
    start: Annotated[Optional[float], typer.Option(help="Decode from this time, in seconds.")] = None,
    end: Annotated[Optional[float], typer.Option(help="Decode up to this time, in seconds.")] = None,
    force: Force = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Render a bundle at any resolution and write real media."""
    progress = Progress(TextColumn("[bold]decoding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=quiet, transient=True)
    task = progress.add_task("decode", total=None)
    with progress:
        out = codec.decode(bundle, output, scale=scale, size=parse_size(size) if size else None, fps=fps,
                           sample_rate=sample_rate, start=start, end=end, force=force,
                           on_frame=lambda i, n: progress.update(task, completed=i, total=n))
    if not quiet:
        err.print(f"[bold green]wrote[/] {out}")


@app.command()
@friendly
def psnr(
    original: Annotated[Path, typer.Argument(help="The original media file.")],
    candidate: Annotated[Path, typer.Argument(help="A .nf bundle, or a decoded media file of the same grid.")],
    start: Annotated[Optional[float], typer.Option(help="Cut the original from here (media candidates).")] = None,
    duration: Annotated[Optional[float], typer.Option(help="Length of the cut, seconds.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="At most this many frames of the original.")] = None,
    resize: Annotated[Optional[str], typer.Option(help="Resize the original to WIDTHxHEIGHT first.")] = None,
    as_json: Json = False,
) -> None:
    """Reconstruction quality: PSNR per modality, size, bits per pixel or kbps.

    Video PSNR = 10 log10(255^2 / MSE) over all 8-bit RGB values; audio PSNR =
    10 log10(2^2 / MSE) with samples in [-1, 1]. A bundle is compared on the
    grid and piece it was encoded from.
    """
    selection = None
    if any(v is not None for v in (start, duration, max_frames, resize)):
        selection = Selection(start or 0.0, duration, max_frames, parse_size(resize) if resize else None)
    report = codec.psnr(original, candidate, selection)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    labels = {"video_psnr_db": "video PSNR (RGB, peak 255)", "audio_psnr_db": "audio PSNR ([-1, 1], peak-to-peak 2)",
              "bytes": "bundle bytes", "bits_per_pixel": "bits per pixel", "kbps": "kbps",
              "raw_bytes": "raw bytes (8-bit RGB / 16-bit PCM)", "compression_ratio": "compression ratio"}
    for key, value in report.items():
        unit = " dB" if key.endswith("_db") else ""
        text = f"{value:,.2f}{unit}" if isinstance(value, float) else f"{value:,}"
        table.add_row(labels.get(key, key), text)
    Console().print(table)


@app.command()
@friendly
def info(
    bundle: Annotated[Path, typer.Argument(help="A .nf bundle.")],
    as_json: Json = False,
) -> None:
    """Show what a bundle holds: geometry, model, fit and quality."""
    b = codec.load(bundle)
    meta = dict(b.meta)
    meta["bytes"] = bundle.stat().st_size
    meta["parameters"] = b.field.num_parameters()
    if as_json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return
    console = Console()
    geo = meta["geometry"]
    console.print(f"[bold]{bundle}[/]: {meta['modality']}, {meta['bytes']:,} bytes, format v{meta['format_version']} "
                  f"(neofield {meta['neofield_version']})")
    if "video" in geo:
        v = geo["video"]
        console.print(f"  video  {v['width']}x{v['height']}, {v['frames']} frames at {v['fps']:g} fps")
    if "audio" in geo:
        a = geo["audio"]
        console.print(f"  audio  {a['channels']} ch at {a['sample_rate']} Hz, {a['samples']:,} samples")
    console.print(f"  length {geo['duration']:.3f} s, from {meta['source']['name']}")
    cfg = meta["model"]["config"]
    n = meta["parameters"]
    sigma = "/".join(f"{v:g}" for v in np.atleast_1d(cfg["rff_sigma"]))  # one value, or one per input
    console.print(f"  model  NeoMLP preset {meta.get('preset')}: D {cfg['dim']}, {cfg['layers']} layers, "
                  f"{cfg['heads']} heads, {cfg['attention']} attention, RFF {cfg['rff_dim']} (sigma {sigma}), "
                  f"{cfg['hidden_tokens']} hidden tokens")
    console.print(f"         {n['total']:,} parameters ({n['backbone']:,} backbone + {n['latents']:,} latents in "
                  f"{meta['model']['segmentation']['segments']} sets), stored as {meta['weights_dtype']}")
    fit = meta.get("fit", {})
    if fit:
        console.print(f"  fit    {fit['steps']:,} steps in {fit['seconds']:.1f} s "
                      f"({fit['points_per_second']:,.0f} points/s)")
    for key, value in meta.get("quality", {}).items():
        console.print(f"  {key.replace('_psnr_db', '')} PSNR {value:.2f} dB")


def _parse_sigma(text: str | None) -> float | tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise NeofieldError(f"--rff-sigma {text!r} is not a number or a comma-separated list") from None
    if any(v <= 0 for v in values):
        raise NeofieldError("--rff-sigma values must be > 0")
    return values[0] if len(values) == 1 else values


def _describe_signal(signal) -> str:
    parts = []
    if signal.video is not None:
        f, h, w, _ = signal.video.shape
        parts.append(f"{w}x{h}" + ("" if signal.media.still else f", {f} frames at {signal.fps:g} fps"))
    if signal.audio is not None:
        parts.append(f"{signal.audio_channels} ch audio at {signal.sample_rate} Hz")
    return f"{signal.kind}: " + " + ".join(parts) + f" ({signal.n_points:,} points, {signal.duration:.2f} s)"


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def run() -> None:  # console-script entry point
    app(prog_name="neofield")


if __name__ == "__main__":
    sys.exit(run())
