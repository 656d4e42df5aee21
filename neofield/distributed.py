"""Data-parallel fitting across processes: ``torchrun`` launches them, PyTorch DDP averages their gradients.

One fit, ``N`` processes: each draws its own ``batch_size / N`` points a step
(its own sampling seed), DDP all-reduces the gradients, and every process
takes the same optimiser step, so the weights stay identical everywhere and
the fit is the single-process fit at the same global batch, only spread.
Everything the loop decides from a clock (a time budget's step plan, its hard
stop, when quantization-aware finetuning starts, whether to compile) is
decided on rank 0's clock, which every step shares; a stop request (Ctrl-C,
SIGTERM) on any rank stops all of them at the same step. Only rank 0 reports
progress and writes checkpoints and outputs.

Without a process group (a plain ``neofield encode``) every function here is
a no-op for one process. Backends: NCCL when the fit runs on CUDA, gloo on CPUs.
"""

from __future__ import annotations

import atexit
import datetime
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import NeofieldError

RANK_SEED_STRIDE = 0x9E3779B1  # spreads the ranks' sampling seeds apart (rank 0 keeps the user's seed)
TIMEOUT = datetime.timedelta(minutes=30)  # a collective waiting this long means a rank died: fail, don't hang


@dataclass(frozen=True)
class World:
    """This process's place among the fit's processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that reports, checkpoints and writes."""
        return self.rank == 0


def launched() -> bool:
    """Whether ``torchrun`` (or another launcher setting its variables) started more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world() -> World:
    """The current process group's view (a world of one when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    return world().main


def init(device: str = "auto") -> World:
    """Join the process group ``torchrun`` set up, once; a world of one when not launched by it.

    ``device`` picks the backend: NCCL for CUDA (each process on GPU ``LOCAL_RANK``), gloo
    for the CPU. Call it before building fields, so that ``cuda`` means this process's GPU.
    """
    if not launched() or dist.is_initialized():
        return world()
    if not dist.is_available():
        raise NeofieldError("this PyTorch build has no torch.distributed: run without torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise NeofieldError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
        if local_rank >= torch.cuda.device_count():
            raise NeofieldError(f"process {local_rank} of this node has no GPU of its own "
                                f"({torch.cuda.device_count()} visible): give torchrun --nproc-per-node "
                                f"{torch.cuda.device_count()} or fewer")
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    atexit.register(shutdown)  # leave the group as the command ends, so that torchrun sees a clean exit
    return world()


def shutdown() -> None:
    """Leave the process group, all ranks together (a rank that left while a peer's last collective was still
    sending to it would abort that peer), and free first what still holds gloo's work: a finished fit's DDP
    wrapper sits in reference cycles, and freeing it during interpreter shutdown aborts the process."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """Each rank's sampling seed: its own stream of points, and rank 0's equal to a one-process fit's."""
    return (seed + rank * RANK_SEED_STRIDE) % (1 << 63)


def local_batch(batch_size: int, size: int) -> int:
    """The points each of ``size`` processes draws per step, for a global batch of ``batch_size``."""
    if batch_size % size:
        raise NeofieldError(f"--batch-size {batch_size:,} does not split over {size} processes: give a multiple "
                            f"of {size}")
    return batch_size // size


def all_gather(items: list) -> list:
    """Every process's ``items`` (a list of picklable things), concatenated in rank order, on every process."""
    group = world()
    if group.size == 1:
        return list(items)
    out = [None] * group.size
    dist.all_gather_object(out, items)
    return [x for part in out for x in part]


def broadcast_from_main(tensors) -> None:
    """Rank 0's values of ``tensors`` on every rank, in place."""
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=0)


def all_reduce_rows(grad: torch.Tensor, size: int, most: int) -> None:
    """Average a row-sparse gradient (a latent table's, of which a step touches at most ``most`` rows) across
    the ranks, in place, sending only the touched rows, with their indices, in one all-gather."""
    rows = grad.flatten(1).ne(0).any(dim=1).nonzero().squeeze(1)
    packed = grad.new_zeros((most, 1 + grad[0].numel()))
    packed[:, 0] = -1  # no row
    packed[:len(rows), 0] = rows.to(grad.dtype)  # exact: tables have fewer than 2^24 rows (sets.signals.MAX_ID)
    packed[:len(rows), 1:] = grad[rows].flatten(1)
    parts = [torch.empty_like(packed) for _ in range(size)]
    dist.all_gather(parts, packed)
    packed = torch.cat(parts)
    packed = packed[packed[:, 0] >= 0]
    grad.zero_()
    grad.index_add_(0, packed[:, 0].long(), packed[:, 1:].reshape(-1, *grad.shape[1:]))
    grad /= size


class StepSync:
    """The fit loop's agreements across ranks, one small collective each (free without a process group)."""

    def __init__(self, group: World, device: torch.device):
        self.world = group
        # NCCL reduces CUDA tensors only; gloo, CPU ones
        self.device = device if device.type == "cuda" else torch.device("cpu")

    @property
    def active(self) -> bool:
        return self.world.size > 1

    def clock(self, elapsed: float, stop: bool) -> tuple[float, bool]:
        """Rank 0's seconds since the start, and whether any rank was asked to stop."""
        if not self.active:
            return elapsed, stop
        t = torch.tensor([elapsed if self.world.main else 0.0, float(stop)], dtype=torch.float64,
                         device=self.device)
        dist.all_reduce(t)
        return float(t[0]), bool(t[1] > 0)

    def loss_and_norm(self, loss: torch.Tensor, norm: torch.Tensor | None) -> tuple[float, float]:
        """The step's loss averaged over the ranks (each holds its share of the batch) and the gradient norm
        (already equal on every rank: DDP averaged the gradients before it was taken)."""
        pair = torch.stack([loss.detach().float(), norm.float() if norm is not None
                            else torch.zeros((), device=loss.device)])
        if self.active:
            pair = pair.to(self.device, torch.float64)
            dist.all_reduce(pair)
            pair /= self.world.size
        value, n = pair.tolist()
        return value, (n if norm is not None else 0.0)

    def from_main(self, obj):
        """Rank 0's ``obj`` on every rank (decisions a rank could take differently: quantization levels)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]
