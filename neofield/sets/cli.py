"""``neofield set``: fit a backbone on a dataset, fit latents of new signals, classify them.

A thin layer over :mod:`neofield.sets.fit` and :mod:`neofield.sets.classify`,
registered by :mod:`neofield.cli` as its ``set`` group (it shares that
module's one-line errors and progress display).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.markup import escape

from ..console import FitDisplay, Force, Json, Quiet, data_parallel, err, friendly, option_flags
from ..errors import NeofieldError
from ..fields.presets import PRESETS
from ..options import parse_size

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="nu-sets: one NeoMLP backbone for a dataset of signals, a latent set per signal "
                       "(the NeoMLP paper's Algorithms 1 and 2), and a classifier on those latents.")

Data = Annotated[str, typer.Argument(help="'digits' (scikit-learn's), a folder with MNIST's idx files or "
                                          "CIFAR-10's binary batches, a folder of images (one subfolder per "
                                          "class), or a folder of sounds or short clips of one size.")]
Split = Annotated[Optional[str], typer.Option(help="train, test or all (a source without its own split: every "
                                                   "5th item is test) \\[default: all for unlabelled signals; "
                                                   "train (set fit) or test (set encode) for a labelled "
                                                   "dataset].", show_default=False)]
Limit = Annotated[Optional[int], typer.Option(help="Take the first N signals of the split.")]
Resize = Annotated[Optional[str], typer.Option(help="Resize every picture to WIDTHxHEIGHT.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]


def _load(data: str, split: str | None, limit: int | None, resize: str | None, labelled_split: str):
    """The dataset; without --split, ``labelled_split`` of a labelled one and all of an unlabelled one (a
    collection of clips to store is not to lose every fifth clip to a test split)."""
    from .data import load_set

    size = parse_size(resize, "--resize") if resize else None
    if split is None:
        whole = load_set(data, "all", limit, size)
        if whole.labels is None:
            return whole
        split = labelled_split
    return load_set(data, split, limit, size)


SET_FIT_OPTIONS = ("preset", "segments", "steps", "epochs", "time_budget", "lr", "batch_size", "weights_dtype",
                   "bits", "latent_bits", "seed", "device", "force")
"""The options of `neofield encode` that `neofield set fit` shares: the same flags, checks and fit settings."""


@app.command("fit")
@friendly
@option_flags(SET_FIT_OPTIONS, defaults={"preset": "tiny"}, helps={
    "preset": f"Backbone size: {', '.join(PRESETS)}.",
    "segments": "Latent sets per signal \\[default: 1 per picture, 1 per frame of a clip, 1 per 1,024 samples of a "
                "sound].",
    "epochs": "Passes over every point of every signal \\[default: 40].",
    "batch_size": "(signal, point) pairs per step \\[default: 1,024].",
    "weights_dtype": "How weights are stored: quantized (range-coded symbols, the fit's last steps finetuned for "
                     "them), or float16, bfloat16, float32.",
    "latent_bits": "Bit depth of the latent table \\[default: --bits]."})
def fit_command(
    data: Data,
    output: Annotated[Path, typer.Option("-o", "--output", help="The set bundle to write (.nf).")],
    split: Split = None,
    limit: Limit = None,
    resize: Resize = None,
    *,
    latent_lr_scale: Annotated[float, typer.Option(help="The latent table's rate as a multiple of the "
                                                        "backbone's (10: +1 dB on digits at 20 epochs).")] = 10.0,
    latent_optimizer: Annotated[str, typer.Option(help="lazy: Adam on the latent sets each batch touched "
                                                       "(default); adam: dense Adam over the whole table.")] = "lazy",
    quiet: Quiet = False,
    as_json: Json = False,
    **flags,
) -> None:
    """Algorithm 1: fit one backbone and a latent set per signal on DATA, and store both.

    Each step draws (signal, point) pairs at random across the whole dataset.
    The weights are stored as `neofield encode` stores one signal's (quantized
    and range coded by default), and each signal's PSNR is measured on what is
    stored. `neofield decode OUTPUT --item K` renders signal K; `neofield set encode`
    fits latents for other signals with this backbone. Under torchrun the fit is
    data-parallel (`torchrun --nproc-per-node N -m neofield set fit ...`).
    """
    import dataclasses

    from ..codec.options import EncodeOptions
    from ..files import check_output
    from ..quantize import storage_bits

    options = EncodeOptions.from_flags(flags).check()  # as `neofield encode` checks them, before torch is imported
    check_output(output, options.force)  # before minutes of fitting

    from ..codec.encoder import fit_config
    from ..fit import DEFAULT_BATCH
    from .fit import DEFAULT_EPOCHS, describe_storage, fit_set, save_set

    depths = storage_bits(options.weights_dtype, options.depths())
    main = data_parallel(options.device)  # rank 0 of torchrun's processes (or the only process) measures and writes
    quiet, as_json = quiet or not main, as_json and main
    dataset = _load(data, split, limit, resize, "train")
    p = PRESETS[options.preset]
    options = dataclasses.replace(options, batch_size=options.batch_size or DEFAULT_BATCH)
    config = fit_config(dataclasses.replace(
        options, lr=options.lr or p.lr, warmup_steps=p.warmup_steps, compile_mode="off", checkpoint_every=None,
        epochs=DEFAULT_EPOCHS if options.default_budget else options.epochs))
    display = FitDisplay(enabled=not quiet, batch_size=options.batch_size)
    display.points = len(dataset) * int(np.prod(dataset.item_shape[:-1]))  # the plan line's epochs
    if not quiet:
        err.print(f"[bold]data[/]   {escape(dataset.source)}: {len(dataset):,} {dataset.kind} signals of "
                  f"{'x'.join(map(str, dataset.item_shape))}")
    report = _with_progress(display, lambda: fit_set(
        dataset, config, options.preset, options.segments, latent_optimizer, latent_lr_scale,
        callback=display.on_progress, on_field=None if quiet else _describe_field,
        weights_dtype=options.weights_dtype, bits=depths, measure=main))
    if not main:
        return
    nbytes = save_set(output, report, preset=options.preset, force=options.force)
    _finish(report, output, nbytes, as_json, quiet,
            f"({nbytes:,} bytes, {nbytes / len(dataset):,.0f} per signal, "
            f"{describe_storage(options.weights_dtype, depths)}) in "
            f"{report.seconds:.1f} s of fitting")


def _with_progress(display: FitDisplay, work):
    """Run a fit with the progress bar on, and off again whatever happens."""
    try:
        display.progress.start()
        return work()
    finally:
        display.progress.stop()


def _finish(report, output: Path, nbytes: int, as_json: bool, quiet: bool, what: str) -> None:
    """The result line (or JSON) of a set fit or a latent fit."""
    summary = {"path": str(output), "bytes": nbytes, **report.summary()}
    if as_json:
        print(json.dumps(summary, indent=2))
    elif not quiet:
        err.print(f"[bold green]wrote[/] {escape(str(output))} {what}; PSNR {summary['mean_psnr_db']:.2f} dB on "
                  f"average (lowest {summary['min_psnr_db']:.2f})")


def _describe_field(field) -> None:
    n = field.num_parameters()
    err.print(f"[bold]model[/]  NeoMLP {field.config.dim}d x {field.config.layers} layers: {n['backbone']:,} "
              f"backbone parameters + {n['latents']:,} latents ({field.items:,} signals x "
              f"{field.segments_per_item} set{'s' if field.segments_per_item > 1 else ''} x "
              f"{field.latents.table.shape[1]} tokens x {field.config.dim})")


@app.command("encode")
@friendly
def encode_command(
    data: Data,
    backbone: Annotated[Path, typer.Option("--backbone", "-b", help="A set bundle from `neofield set fit`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The nu-reps to write (.safetensors).")],
    split: Split = None,
    limit: Limit = None,
    resize: Resize = None,
    # sets.fit.DEFAULT_FINETUNE_STEPS (this module imports no torch)
    steps: Annotated[int, typer.Option(help="Steps per chunk of signals (more: latents that render the signals "
                                            "better, but classify worse; see docs/cpu-defaults.md).")] = 150,
    points: Annotated[int, typer.Option(help="Points of every signal in each step (so that every signal's "
                                             "latents get the same steps, whatever the set's size).")] = 16,
    time_budget: Annotated[Optional[float], typer.Option("--time-budget", help="Seconds per chunk.")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the latents.")] = 0.1,
    chunk: Annotated[int, typer.Option(help="Signals whose latents are fitted together.")] = 4096,
    init: Annotated[str, typer.Option(help="Where each signal's latents start: mean (the backbone's mean latent "
                                           "set: one token order for all, +12 points of accuracy on digits) or "
                                           "normal (N(0, 1e-3), the paper's).")] = "mean",
    seed: Annotated[int, typer.Option(help="Seed of the points' order (every signal takes the same points): "
                                           "give the training and test splits the same one.")] = 0,
    device: Device = "auto",
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Algorithm 2: fit latents for every signal of DATA with the backbone frozen, and write them.

    The file (safetensors) holds the nu-reps with their labels and PSNR.
    Many signals are fitted at once, --chunk at a time. Give the training split
    too to get features for a classifier (`neofield set classify`). Under
    torchrun the chunks are shared out among the processes.
    """
    from .. import options
    from ..files import check_output
    from ..fit import FitConfig
    from .fit import fit_latents, load_set_bundle, process_chunk, save_reps

    options.positive_int("--chunk", chunk, 1 << 24)
    options.positive_int("--steps", steps, 1 << 40)
    options.positive_int("--points", points, 1 << 20)
    options.positive_float("--lr", lr)
    main = data_parallel(device)
    quiet, as_json = quiet or not main, as_json and main
    check_output(output, force)
    field, meta = load_set_bundle(backbone)
    dataset = _load(data, split, limit, resize, "test")
    from .. import distributed

    chunk = process_chunk(len(dataset), chunk, distributed.world().size)  # each process's, as fit_latents does
    per_step = chunk * points
    config = FitConfig(lr=lr, warmup_steps=10, batch_size=per_step, seed=seed, device=device, compile="off",
                       steps=steps, time_budget=time_budget)
    display = FitDisplay(enabled=not quiet, batch_size=per_step)
    display.points = chunk * int(np.prod(dataset.item_shape[:-1]))  # per chunk
    if not quiet:
        err.print(f"[bold]data[/]   {escape(dataset.source)}: {len(dataset):,} signals; latents fitted "
                  f"{chunk:,} at a time per process, {points} points of each per step")
    report = _with_progress(display, lambda: fit_latents(
        field, meta, dataset, config, meta["collection"]["segments_per_item"], chunk, points, init,
        callback=lambda first, n, p: display.on_progress(p)))
    if not main:
        return
    nbytes = save_reps(output, report, backbone.name, force=force)
    _finish(report, output, nbytes, as_json, quiet, f"(latents of {len(dataset):,} signals) in {report.seconds:.1f} s")


@app.command("classify")
@friendly
def classify_command(
    train: Annotated[Path, typer.Argument(help="nu-reps of the training signals (neofield set encode).")],
    test: Annotated[Path, typer.Argument(help="nu-reps of the test signals.")],
    seeds: Annotated[int, typer.Option(help="Train this many classifiers (seeds 0, 1, ...).")] = 3,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per classifier \\[default: the "
                                                       "classifier's].")] = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Train an MLP on the flattened latents and report its test accuracy, mean ± std over seeds.

    As in the NeoMLP paper: Mixup, weight decay, input noise and an EMA of the weights."""
    import dataclasses

    from .classify import ClassifierConfig, evaluate
    from .fit import load_reps

    a, b = load_reps(train), load_reps(test)
    for path, r in ((train, a), (test, b)):
        if r.labels is None:
            raise NeofieldError(f"{path} has no labels: a classifier needs labelled signals")
    if a.latents.shape[1:] != b.latents.shape[1:]:
        raise NeofieldError(f"{train} and {test} hold latents of different shapes "
                            f"({tuple(a.latents.shape[1:])} and {tuple(b.latents.shape[1:])}): "
                            "fit both with one backbone")
    if seeds < 1:
        raise NeofieldError("--seeds must be at least 1")
    config = ClassifierConfig()
    if epochs is not None:
        if epochs < 1:
            raise NeofieldError("--epochs must be at least 1")
        config = dataclasses.replace(config, epochs=epochs)
    classes = len(a.meta.get("classes") or []) or None
    result = evaluate(a.features, a.labels, b.features, b.labels, config, seeds=tuple(range(seeds)),
                      num_classes=classes)
    out = {"accuracy_mean": result.mean, "accuracy_std": result.std,
           "per_seed": [r.accuracy for r in result.results], "train": len(a.labels), "test": len(b.labels),
           "features": a.features.shape[1], "test_psnr_db": round(float(b.psnr.mean()), 3)}
    if as_json:
        print(json.dumps(out, indent=2))
    elif not quiet:
        err.print(f"[bold green]accuracy[/] {result.summary()} ({len(b.labels):,} test signals, "
                  f"{a.features.shape[1]:,} features from {len(a.labels):,} training signals)")
