"""Data-parallel fitting: 2 gloo processes on the CPU against one, and the command under torchrun."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from neofield import distributed
from neofield.codec import make_field, measure
from neofield.errors import NeofieldError
from neofield.fit import FitConfig, FitInterrupted, fit
from neofield.media import read_media
from neofield.signal import Signal


def test_rank_zero_samples_with_the_users_seed_and_the_others_with_their_own():
    assert distributed.rank_seed(7, 0) == 7
    seeds = {distributed.rank_seed(7, r) for r in range(64)}
    assert len(seeds) == 64


def test_the_global_batch_splits_evenly_or_is_refused_in_one_line():
    assert distributed.local_batch(1024, 2) == 512
    with pytest.raises(NeofieldError, match="multiple of 3"):
        distributed.local_batch(1024, 3)


def test_without_torchrun_the_world_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched()
    assert distributed.init("cpu") == distributed.World()
    sync = distributed.StepSync(distributed.World(), torch.device("cpu"))
    assert sync.clock(3.5, False) == (3.5, False)
    assert sync.loss_and_norm(torch.tensor(0.25), None) == (0.25, 0.0)
    assert sync.from_main({"a": 1}) == {"a": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminate_once_fitting() -> None:
    while signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker(rank: int, size: int, port: int, clip: str, config: dict, out: str, stop_rank: int | None) -> None:
    """One rank of a data-parallel fit; writes its outcome and weights to ``out/rank{rank}.pt``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init("cpu")
    signal_ = Signal(read_media(clip))
    field = make_field(signal_, "tiny", 4, seed=0)
    if rank == stop_rank:  # SIGTERM to this rank alone, once its fit is under way (its handler installed)
        threading.Thread(target=_terminate_once_fitting, daemon=True).start()
    try:
        result = fit(field, signal_, FitConfig(device="cpu", compile="off", **config))
        outcome = {"steps": result.steps, "interrupted": False}
    except FitInterrupted as stop:
        outcome = {"steps": stop.state.step, "interrupted": True}
    torch.save({"outcome": outcome, "weights": field.state_dict()}, Path(out) / f"rank{rank}.pt")
    distributed.shutdown()


def _run_ranks(tmp_path: Path, clip: Path, config: dict, stop_rank: int | None = None) -> list[dict]:
    mp.spawn(_worker, args=(2, _free_port(), str(clip), config, str(tmp_path), stop_rank), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


def _assert_same_weights(ranks: list[dict]) -> None:
    a, b = (r["weights"] for r in ranks)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_two_processes_step_together_and_end_on_the_same_weights(tmp_path, tiny_clip):
    ranks = _run_ranks(tmp_path, tiny_clip, {"steps": 40, "batch_size": 256})
    assert [r["outcome"] for r in ranks] == [{"steps": 40, "interrupted": False}] * 2
    _assert_same_weights(ranks)


def test_a_time_budget_ends_every_rank_at_the_same_step(tmp_path, tiny_clip):
    ranks = _run_ranks(tmp_path, tiny_clip, {"time_budget": 3.0, "batch_size": 256})
    steps = [r["outcome"]["steps"] for r in ranks]
    assert steps[0] == steps[1] > 20
    _assert_same_weights(ranks)


def test_sigterm_to_one_rank_stops_all_of_them_at_the_same_step(tmp_path, tiny_clip):
    ranks = _run_ranks(tmp_path, tiny_clip, {"steps": 100_000, "batch_size": 256}, stop_rank=1)
    assert all(r["outcome"]["interrupted"] for r in ranks)
    assert ranks[0]["outcome"]["steps"] == ranks[1]["outcome"]["steps"] > 0
    _assert_same_weights(ranks)


def test_two_processes_reach_one_process_quality_at_equal_total_points(tmp_path, tiny_clip):
    config = {"steps": 300, "batch_size": 512}
    ranks = _run_ranks(tmp_path, tiny_clip, config)
    signal_ = Signal(read_media(tiny_clip))
    one = make_field(signal_, "tiny", 4, seed=0)
    fit(one, signal_, FitConfig(device="cpu", compile="off", **config))
    two = make_field(signal_, "tiny", 4, seed=0)
    two.load_state_dict(ranks[0]["weights"])
    p_one, p_two, start = (measure(f, signal_)["video_psnr_db"]
                           for f in (one, two, make_field(signal_, "tiny", 4, seed=0)))
    assert p_one > start + 8 and p_two > start + 8  # both fits learnt the clip ...
    assert abs(p_two - p_one) < 1.0  # ... equally well, though from other points


def _pictures(n: int = 10):
    import numpy as np

    from neofield.sets.data import SignalSet

    values = np.random.default_rng(0).integers(0, 256, (n, 6, 6, 1), dtype=np.uint8)
    return SignalSet("image", values, None, (), tuple(f"p{i}" for i in range(n)))


def _backbone():
    from neofield.sets.fit import make_set_field
    from neofield.sets.signals import SetSignal

    return make_set_field(SetSignal(_pictures()), seed=0)


def _latents_worker(rank: int, size: int, port: int, out: str) -> None:
    """One rank of Algorithm 2 on 10 pictures; writes the latents it ends with."""
    from neofield.sets.fit import fit_latents
    from neofield.sets.signals import SetSignal

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init("cpu")
    config = FitConfig(steps=20, batch_size=256, device="cpu", compile="off")
    backbone = _backbone()  # the same on every rank (one seed)
    report = fit_latents(backbone, SetSignal(_pictures()).layout(), _pictures(), config)
    torch.save({"table": report.field.latents.table.detach(), "psnr": report.psnr, "chunks": len(report.fit)},
               Path(out) / f"rank{rank}.pt")
    distributed.shutdown()


def test_algorithm_2_shares_the_signals_out_and_every_rank_ends_with_all_latents(tmp_path):
    from neofield.sets.fit import fit_latents
    from neofield.sets.signals import SetSignal

    mp.spawn(_latents_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["chunks"] == 2  # 5 signals each
    assert torch.equal(ranks[0]["table"], ranks[1]["table"]) and torch.equal(ranks[0]["psnr"], ranks[1]["psnr"])
    # the same latents as one process fitting the same chunks
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = FitConfig(steps=20, batch_size=256, device="cpu", compile="off")
        one = fit_latents(_backbone(), SetSignal(_pictures()).layout(), _pictures(), config, chunk=5)
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(one.field.latents.table, ranks[0]["table"], atol=1e-6)
    assert torch.allclose(one.psnr, ranks[0]["psnr"], atol=1e-3)


def test_encode_under_torchrun_writes_one_bundle_and_speaks_once(tmp_path, tiny_clip):
    out = tmp_path / "two.nf"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "neofield", "encode", str(tiny_clip), "-o", str(out), "--steps", "40",
                          "--device", "cpu", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)  # one JSON document: rank 1 printed nothing
    assert report["bytes"] == out.stat().st_size and report["fit"]["steps"] == 40
    assert report["quality"]["video_psnr_db"] > 15
    assert [p.name for p in tmp_path.iterdir()] == ["two.nf"]  # no checkpoint or temporary file left


def _set_worker(rank: int, size: int, port: int, out: str) -> None:
    """One rank of Algorithm 1 on 300 pictures, 16 points a step: the table is reduced row by row."""
    from neofield.sets.fit import fit_set

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init("cpu")
    report = fit_set(_pictures(300), FitConfig(steps=20, batch_size=16, device="cpu", compile="off"), measure=False)
    torch.save({"weights": report.field.state_dict()}, Path(out) / f"rank{rank}.pt")
    # the row-by-row average against the dense one, on gradients touching rows of both ranks and of one
    grad = torch.zeros(6, 2, 3)
    grad[[1, 4] if rank == 0 else [4, 5]] = torch.arange(12.0).reshape(2, 2, 3) + 100 * rank
    dense = grad.clone()
    torch.distributed.all_reduce(dense)
    distributed.all_reduce_rows(grad, size, most=2)
    torch.save({"rows": grad, "dense": dense / size}, Path(out) / f"reduce{rank}.pt")
    distributed.shutdown()


def test_a_set_fit_averages_the_touched_latent_rows_and_keeps_every_rank_identical(tmp_path):
    from neofield.sets.fit import make_set_field
    from neofield.sets.signals import SetSignal

    mp.spawn(_set_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in range(2):
        reduced = torch.load(tmp_path / f"reduce{r}.pt")
        assert torch.equal(reduced["rows"], reduced["dense"])
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    _assert_same_weights(ranks)
    fresh = make_set_field(SetSignal(_pictures(300)), seed=0).latents.table.detach()
    moved = (ranks[0]["weights"]["latents.table"] - fresh).flatten(1).abs().amax(1).gt(0)
    # 20 steps of 16 points reach some of the 300 signals: their rows moved, lazy Adam left the others alone
    assert 100 < moved.sum() < 300


def _resume_worker(rank: int, size: int, port: int, clip: str, out: str) -> None:
    """Stop a 2-rank fit with SIGTERM to rank 1, then resume both ranks from rank 0's one checkpoint."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init("cpu")
    signal_ = Signal(read_media(clip))
    config = FitConfig(steps=400, batch_size=256, device="cpu", compile="off")
    saved = []
    if rank == 1:
        threading.Thread(target=_terminate_once_fitting, daemon=True).start()
    try:
        fit(make_field(signal_, "tiny", 4, seed=0), signal_, config, on_checkpoint=saved.append)
        stopped_at = None
    except FitInterrupted as stop:
        stopped_at = stop.state.step
    if rank == 0:
        torch.save(saved, Path(out) / "state.pt")
    torch.distributed.barrier()
    state = torch.load(Path(out) / "state.pt", weights_only=False)[0]
    field = make_field(signal_, "tiny", 4, seed=0)
    done = fit(field, signal_, config, resume=state)
    torch.save({"stopped_at": stopped_at, "checkpoints": len(saved), "steps": done.steps,
                "weights": field.state_dict()}, Path(out) / f"rank{rank}.pt")
    distributed.shutdown()


def test_a_stopped_data_parallel_fit_resumes_from_rank_0s_one_checkpoint(tmp_path, tiny_clip):
    mp.spawn(_resume_worker, args=(2, _free_port(), str(tiny_clip), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["checkpoints"] for r in ranks] == [1, 0]  # rank 0 alone checkpoints
    assert ranks[0]["stopped_at"] == ranks[1]["stopped_at"] < 400
    assert [r["steps"] for r in ranks] == [400, 400]
    _assert_same_weights(ranks)
