"""The ``neofield`` command: a thin Typer layer over :mod:`neofield.codec`.

Every user error becomes one red line on stderr and exit code 1; usage errors
are Typer's (exit 2). Progress and tables go to stderr, so ``--json`` output
(and ``decode -o -``) on stdout stays machine-readable. torch and the codec are
imported inside the commands, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .console import (
    PIECE_FLAGS,
    AllowLarge,
    FitDisplay,
    Force,
    Json,
    LogLines,
    Quiet,
    console,
    data_parallel,
    err,
    friendly,
    human_time,
    limits_for,
    option_flags,
    piece,
    speaks,
)
from .codec.options import check_decode_options
from .options import parse_crop, parse_size
from .sets.cli import app as set_app

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Compress video, audio or video with sound by fitting a NeoMLP neural field; "
                       "decode it back at any resolution.")


def _version(value: bool) -> None:
    if value:
        print(f"neofield {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """neofield: neural-field media codec."""


@app.command()
@friendly
@option_flags()
def encode(
    source: Annotated[Path, typer.Argument(help="Video, audio or image file (anything FFmpeg reads).")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="Bundle path \\[default: SOURCE.nf].")] = None,
    *,
    quiet: Quiet = False,
    as_json: Json = False,
    **flags,
) -> None:
    """Fit a neural field to SOURCE and store it as a small .nf bundle.

    Without --steps, --epochs or --time-budget the fit stops after 20 epochs or
    5 minutes, whichever comes first; the plan is printed before it starts.
    Ctrl-C or SIGTERM stops the fit with a checkpoint; --resume continues it.
    Under torchrun (`torchrun --nproc-per-node N -m neofield encode ...`) the
    fit is data-parallel over N processes; rank 0 writes.
    """
    from . import codec
    from .codec.options import EncodeOptions

    selection = piece(*(flags.pop(k) for k in PIECE_FLAGS))
    options = EncodeOptions.from_flags(flags, selection=selection).check()  # before torch is imported
    if not data_parallel(options.device):
        quiet, as_json = True, False
    display = FitDisplay(enabled=not quiet, batch_size=options.batch_size)
    try:
        report = codec.encode(source, output, options, callback=display.on_progress, on_signal=display.on_signal)
    except codec.EncodeInterrupted as stop:
        display.progress.stop()
        if speaks():
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
    crop: Annotated[Optional[str], typer.Option(help="Render only this window X,Y,W,H of the frames (in their "
                                                     "pixels, after --scale or --size): it costs its area.")] = None,
    between: Annotated[str, typer.Option(help="What a frame between the fitted frames' times shows (a higher or "
                                              "other frame rate): blend, the two around it blended by time, "
                                              "or field, the field's own picture.")] = "blend",
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
    size_wh, crop_box = parse_size(size, "--size") if size else None, parse_crop(crop) if crop else None
    check_decode_options(scale, scale_time, scale_rate, size_wh, fps, sample_rate, start, end, frame, crf, crop_box,
                         compile_mode, between)  # before torch is imported: a mistyped number answers at once
    from . import codec

    progress = Progress(TextColumn("[bold]decoding"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err,
                        disable=quiet or not err.is_terminal, transient=True)
    task = progress.add_task("decode", total=None)
    log = LogLines("decoded points", enabled=not quiet and not err.is_terminal)

    def on_plan(cost) -> None:
        if not quiet and not as_json and (cost.seconds >= 10 or cost.compiled):
            err.print(f"[bold]plan[/]   {cost.points:,} points, about {human_time(cost.seconds)} at "
                      f"{cost.speed:,.0f} points/s"
                      + (" once compiled (compiling takes ~15 s)" if cost.compiled else "")
                      + f"; {cost.memory_bytes / 2**20:,.0f} MiB at most")

    def on_progress(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)
        log(done, total)

    with progress:
        report = codec.decode(bundle, output, scale=scale, scale_time=scale_time, scale_rate=scale_rate,
                              size=size_wh, fps=fps, sample_rate=sample_rate,
                              start=start, end=end, frame=frame, crop=crop_box,
                              between=between, codec=codec_name, crf=crf, lossless=lossless,
                              format=format, force=force, compile_mode=compile_mode, limits=limits_for(allow_large),
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

    selection = piece(start, duration, max_frames, resize, always=False)
    report = codec.psnr(original, candidate, selection, per_frame=as_json, limits=limits_for(allow_large))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    for key, value in report.items():
        label, unit = LABELS.get(key, (key, ""))
        text = f"{value:,.4f}" if key.endswith("ssim") else f"{value:,.2f}" if isinstance(value, float) \
            else f"{value:,}"
        table.add_row(label, text + unit)
    console(stderr=False).print(table)


LABELS = {
    "video_psnr_db": ("video PSNR (RGB, peak 255)", " dB"), "video_ssim": ("video SSIM (luma)", ""),
    "audio_psnr_db": ("audio PSNR ([-1, 1], peak-to-peak 2)", " dB"), "audio_snr_db": ("audio SNR", " dB"),
    "audio_segmental_snr_db": ("audio segmental SNR (20 ms)", " dB"),
    "field_video_psnr_db": ("video PSNR of the field itself (bundle)", " dB"),
    "field_audio_psnr_db": ("audio PSNR of the field itself (bundle)", " dB"),
    "video_output_loss_db": ("video PSNR lost to this file's codec", " dB"),
    "audio_output_loss_db": ("audio PSNR lost to this file's codec", " dB"),
    "bytes": ("bundle bytes", ""), "bytes_backbone": ("  of which backbone weights", ""),
    "bytes_latents": ("  of which latents", ""), "bytes_side": ("  of which metadata and headers", ""),
    "bits_per_pixel": ("bits per pixel", ""), "kbps": ("kbps", ""),
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

    limits = limits_for(allow_large)
    b = load(bundle, limits)  # a set bundle too, whole
    meta = dict(b.meta)
    meta["bytes"] = bundle.stat().st_size
    meta["stored_bytes"] = stored_bytes(bundle.read_bytes(), limits)
    meta["parameters"] = b.field.num_parameters()
    from .fields.cost import macs_per_point

    for stream, key in (("video", "macs_per_pixel"), ("audio", "macs_per_sample")):
        if stream in meta["geometry"]:  # what a decode of the stream pays for each point it renders
            meta[key] = macs_per_point(b.field, slice(*meta["outputs"][stream]))
    if as_json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return
    out = console(stderr=False)
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
        q = meta.get("quantization") or {}
        bits = q.get("bits") or {}
        if {"latent_step", "lambda"} <= set(q) and "backbone" in bits:
            how = (f"quantized to {bits['backbone']:g} bits (backbone) and at a step of {q['latent_step']:g} "
                   f"(latents, fitted for their rate at lambda {q['lambda']:g}), range coded")
        elif {"backbone", "latents"} <= set(bits):
            how = f"quantized to {bits['backbone']:g} bits (backbone) and {bits['latents']:g} bits (latents), range coded"
        else:
            how = "quantized, range coded"
    else:
        how = f"{meta['weights_dtype']}, zstd (shares estimated)"
    say(f"  bytes  {split['backbone']:,} backbone + {split['latents']:,} latents + {split['side']:,} metadata "
        f"and headers; {how}")
    costs = [f"{meta[key]:,} per decoded {unit}" for key, unit in (("macs_per_pixel", "pixel"),
                                                                     ("macs_per_sample", "sample")) if key in meta]
    say(f"  cost   multiply-adds: {', '.join(costs)}")
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
    if arch == "neogrid":
        return [f"  model  neogrid: latent pyramids ({'; '.join(_describe_pyramids(model['segmentation']))}) read "
                f"by a one-layer NeoMLP (D {cfg['dim']}, {cfg['hidden_tokens']} hidden and {cfg['out_features']} "
                f"output tokens, {cfg['attention']} attention)",
                f"         {n['total']:,} parameters ({n['backbone']:,} backbone + {n['latents']:,} latents), {stored}"]
    if arch == "grid":
        pyramids = []
        if cfg["out_features"] > cfg["audio_outputs"]:
            pyramids.append(f"pictures {cfg['levels']} levels x {cfg['channels']} channels, "
                            f"{'x'.join(map(str, cfg['coarse']))} to {'x'.join(map(str, cfg['fine']))} nodes")
        if cfg["audio_outputs"]:
            pyramids.append(f"sound {cfg['audio_levels']} levels x {cfg['audio_channels']} channels, "
                            f"{cfg['audio_coarse']:,} to {cfg['audio_fine']:,} nodes")
        return [f"  model  grid: latent pyramids ({'; '.join(pyramids)}), a {cfg['layers']} x {cfg['width']} MLP",
                f"         {n['total']:,} parameters ({n['latents']:,} latents), {stored}"]
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


def _describe_pyramids(layout: dict) -> list[str]:
    """Each pyramid of a layout: what it spans, its levels and nodes."""
    out = []
    for p in layout["pyramids"]:
        what = "sound" if len(p["axes"]) == 1 else "pictures"
        out.append(f"{what} {p['levels']} levels x {layout['channels']} channels, "
                   f"{'x'.join(f'{v:,}' for v in p['coarse'])} to {'x'.join(f'{v:,}' for v in p['fine'])} nodes")
    return out


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


def _describe_grid(plan) -> str:
    parts = []
    if plan.video is not None:
        v = plan.video
        parts.append(f"{v.width}x{v.height}, {v.frames} frame{'s' * (v.frames != 1)} at {v.fps:g} fps")
    if plan.audio is not None:
        parts.append(f"{plan.audio.samples:,} samples at {plan.audio.sample_rate} Hz")
    return " + ".join(parts)


app.add_typer(set_app, name="set")


def _terminate(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary outputs are removed and nothing half-written stays."""
    raise KeyboardInterrupt


def run() -> None:  # console-script entry point
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="neofield")


if __name__ == "__main__":
    sys.exit(run())
