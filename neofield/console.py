"""What both command lines share (``neofield`` and its ``set`` group): the console, one-line errors, the
fit's progress display, common flags, and the flags generated from :class:`~neofield.codec.options.EncodeOptions`.

It sits below both command-line modules and above the library, so that neither command line imports
the other. Nothing here imports torch at import time: ``--help`` answers at once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .codec.options import EncodeOptions
from .errors import NeofieldError
from .options import parse_size

if TYPE_CHECKING:
    from .fit import FitProgress
    from .media import Selection


def console(stderr: bool) -> Console:
    """A console that hard-wraps only on a terminal: in a log or a pipe every
    message stays one line, however long."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=10_000, soft_wrap=True)


err = console(stderr=True)

def speaks() -> bool:
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
            if speaks():
                err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if speaks():
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

    def __init__(self, enabled: bool, batch_size: int | None):
        self.enabled, self.batch_size, self.points, self.duration = enabled, batch_size or 1024, 1, 0.0
        self.live = enabled and err.is_terminal
        self.budget: dict = {}
        self.last_log = time.monotonic()
        self.progress = Progress(TextColumn("[bold]fitting"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=err, disable=not self.live)
        self.task = self.progress.add_task("fit", total=None, stats="")

    def on_signal(self, signal, field, budget: dict) -> None:
        self.points, self.budget, self.duration = signal.n_points, budget, signal.duration
        self.batch_size = budget.get("batch_size") or self.batch_size  # the encoder's, once resolved for the field
        if not self.enabled:
            return
        n = field.num_parameters()
        err.print(f"[bold]signal[/] {escape(describe_signal(signal))}")
        from .fields.cost import macs_per_point
        from .fields.registry import arch_of

        arch, c = arch_of(field), field.config
        if arch == "neomlp":
            err.print(f"[bold]model[/]  NeoMLP {c.dim}d x {c.layers} layers, {n['total']:,} parameters "
                      f"({n['backbone']:,} backbone + {n['latents']:,} latents in {len(field.latents)} sets)")
        elif arch == "neogrid":
            pyramids = field.layout.pyramids
            levels = sum(p.levels for p in pyramids)
            taps = sum(p.taps for p in pyramids)
            read = f"{levels} levels"
            if taps:  # fields.pyramid.Pyramid.taps
                finest = "the finest" if taps == 1 else f"the finest {taps}"
                read += f", {finest} also read at {len(pyramids[0].TAP_OFFSETS)} taps"
            err.print(f"[bold]model[/]  neogrid: {n['latents']:,} latents in pyramids ({read}) + a "
                      f"one-layer NeoMLP, D {c.dim} ({n['backbone']:,}), {n['total']:,} parameters, "
                      f"{macs_per_point(field):,} multiply-adds a point")
        elif arch == "grid":
            err.print(f"[bold]model[/]  grid: {n['latents']:,} latents in pyramids + a {c.layers} x {c.width} MLP "
                      f"({n['backbone']:,}), {n['total']:,} parameters (as many as the NeoMLP preset's)")
        else:
            err.print(f"[bold]model[/]  {arch} {c.layers} layers of width {c.width}, {n['total']:,} parameters "
                      "(as many as the NeoMLP preset's)")
        if budget.get("lambda") is not None:
            err.print(f"[bold]rate[/]   {describe_rate(budget['lambda'], budget.get('lambda_default', False))}")
        err.print(f"[bold]budget[/] {describe_budget(budget)}")
        self.progress.start()

    def on_progress(self, p: FitProgress) -> None:
        if not self.enabled:
            return
        stats = f"loss {p.loss:.2e}  psnr {p.psnr:5.2f} dB  {p.points_per_second:,.0f} pts/s"
        if p.note:
            self.progress.console.print(f"[bold]note[/]   {escape(p.note)}")
        if p.planned:
            epochs = p.total_steps * self.batch_size / self.points
            # what each second of media gets: a long clip is fitted all at once, so it shares the budget
            per_second = (f"; each second of media gets {(p.elapsed + p.eta) / self.duration:,.1f} s of "
                          "fitting" if self.duration > 1.0 else "")
            self.progress.console.print(
                f"[bold]plan[/]   {p.total_steps:,} steps x {self.batch_size:,} points ({epochs:.2f} epochs); "
                f"measured {p.points_per_second:,.0f} points/s, so about {human_time(p.eta)} to go{per_second}")
            if p.eta > 600:
                self.progress.console.print(
                    f"[bold yellow]warning:[/] this fit will take about {human_time(p.eta)}; Ctrl-C stops it "
                    "(keeping a checkpoint that --resume continues), --time-budget SECONDS bounds it")
            if self.budget.get("default") and epochs < 1:
                self.progress.console.print(
                    f"[bold yellow]note:[/] the default budget sees each point {epochs:.2f} times: expect a "
                    "rough result; a shorter --duration, a smaller --resize or a longer --time-budget does better")
        self.progress.update(self.task, completed=p.step, total=p.total_steps, stats=stats)
        if not self.live and p.total_steps and time.monotonic() - self.last_log >= self.LOG_EVERY:
            self.last_log = time.monotonic()
            err.print(f"fitting step {p.step:,}/{p.total_steps:,}  {stats}  {human_time(p.elapsed)} elapsed, "
                      f"about {human_time(p.eta)} to go")


class LogLines:
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
            err.print(f"{self.what} {done:,}/{total:,}, {human_time(elapsed)} elapsed, about "
                      f"{human_time(elapsed * (total - done) / max(done, 1))} to go")


Force = Annotated[bool, typer.Option("--force", "-y", help="Overwrite the output if it exists.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
AllowLarge = Annotated[bool, typer.Option("--allow-large", help="Raise every size limit on bundles and decodes "
                                                                "sixteenfold (model size, inflated bytes, "
                                                                "points, memory, time): for bundles you trust.")]


def limits_for(allow_large: bool):
    from .schema import DEFAULT_LIMITS, Limits

    return Limits.large() if allow_large else DEFAULT_LIMITS


def describe_rate(lam: float, default: bool) -> str:
    """The plan's line for a rate term at a fixed lambda: what it does, and how to move it."""
    text = f"the latents fitted for their own rate at lambda {lam:g}"
    if default:
        text += (" (the default; --lambda, --size, --bitrate or --psnr set the operating point, --bits 6 the "
                 "fixed depths)")
    return text


def describe_budget(budget: dict) -> str:
    rules = []
    if budget.get("steps") is not None:
        rules.append(f"{budget['steps']:,} steps")
    if budget.get("epochs") is not None:
        rules.append(f"{budget['epochs']:g} epochs")
    if budget.get("time_budget") is not None:
        rules.append(human_time(budget["time_budget"]))
    text = " or ".join(rules) + (", whichever comes first" if len(rules) > 1 else "")
    if budget.get("default"):
        text += " (the default; set --steps, --epochs or --time-budget to change it)"
    return text


def describe_signal(signal) -> str:
    parts = []
    if signal.video is not None:
        f, h, w, _ = signal.video.shape
        parts.append(f"{w}x{h}" + ("" if signal.media.still else f", {f} frames at {signal.fps:g} fps"))
    if signal.audio is not None:
        parts.append(f"{signal.audio_channels} ch audio at {signal.sample_rate} Hz")
    return f"{signal.kind}: " + " + ".join(parts) + f" ({signal.n_points:,} points, {signal.duration:.2f} s)"


def human_time(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- flags ----
Start = Annotated[Optional[float], typer.Option(help="Start of the piece to encode, in seconds.")]
Duration = Annotated[Optional[float], typer.Option(help="Length of the piece, in seconds.")]
MaxFrames = Annotated[Optional[int], typer.Option(help="Encode at most this many frames.")]
Resize = Annotated[Optional[str], typer.Option(help="Encode a resized copy, WIDTHxHEIGHT (as displayed).")]
PIECE_FLAGS = ("start", "duration", "max_frames", "resize")


def piece(start: float | None, duration: float | None, max_frames: int | None, resize: str | None,
          always: bool = True) -> Selection | None:
    """The piece of a source ``--start``, ``--duration``, ``--max-frames`` and ``--resize`` name (None when
    none is given and not ``always``)."""
    from .media import Selection

    if not always and all(v is None for v in (start, duration, max_frames, resize)):
        return None
    return Selection(start or 0.0, duration, max_frames, parse_size(resize, "--resize") if resize else None)


def option_flags(names: tuple[str, ...] | None = None, helps: dict[str, str] | None = None,
                 defaults: dict | None = None, piece_help: dict[str, str] | None = None):
    """Give a Typer command one flag per option of :class:`EncodeOptions` (``names``: those only, in that
    order), named, typed and explained by the option's own :class:`~neofield.codec.options.Flag`; where
    the options' ``selection`` stands, the piece flags (``--start``, ``--duration``, ``--max-frames``,
    ``--resize``). The command receives them as keyword arguments (``**flags``), for
    :meth:`EncodeOptions.from_flags`; ``helps`` and ``defaults`` say what differs for this command."""
    helps, defaults = helps or {}, defaults or {}
    order = names if names is not None else tuple(f.name for f in dataclasses.fields(EncodeOptions))
    flags = {f.name: (f, fl) for f, fl in EncodeOptions.flags()}

    def parameter(name: str, annotation, default) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    generated = []
    for name in order:
        if name == "selection":
            for key, kind in zip(PIECE_FLAGS, (Start, Duration, MaxFrames, Resize)):
                info = kind.__metadata__[0]
                text = (piece_help or {}).get(key, info.help)
                generated.append(parameter(key, Annotated[kind.__origin__, typer.Option(help=text)], None))
            continue
        if name not in flags:
            continue
        f, fl = flags[name]
        default = defaults.get(name, f.default)
        kind = fl.type if fl.type is bool or default is not None else Optional[fl.type]
        decls = (fl.name, fl.short) if fl.short else (fl.name,)
        generated.append(parameter(name, Annotated[kind, typer.Option(*decls, help=helps.get(name, fl.help),
                                                                      show_default=fl.show_default)], default))

    def decorate(command):
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
        leading = [p for p in own if p.kind != p.KEYWORD_ONLY]
        trailing = [p for p in own if p.kind == p.KEYWORD_ONLY]
        command.__signature__ = inspect.Signature(leading + generated + trailing)
        return command

    return decorate
