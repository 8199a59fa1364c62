"""Data parallelism for ``torchrun --nproc_per_node=N -m trainer ...`` (gloo on CPU, nccl on GPU).

Every rank embeds its slice of the global batch; `gather` concatenates the slices of all ranks (rank-major, so
the global batch has the same order as in one process) keeping the autograd path of the local slice, and every
rank computes the same global loss. Each rank's backward then yields the gradient of that loss through its own
embeddings only; `sync_grads` sums those over ranks, which is exactly the single-process gradient.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup() -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rank = int(os.environ["RANK"])
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():  # long timeout: in the recipe, ranks > 0 wait while rank 0 filters and mines
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(hours=6))
    log.info("rank %d of %d on %s (%s)", rank, world, device, dist.get_backend())
    return Dist(rank=rank, world=world, device=device)


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def gather(x: torch.Tensor, d: Dist) -> torch.Tensor:
    """All ranks' x (same shape on every rank) concatenated rank-major; gradient flows to the local slice."""
    if not d.enabled:
        return x
    parts = [torch.empty_like(x) for _ in range(d.world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[d.rank] = x
    return torch.cat(parts)


def all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def sync_grads(params: list[torch.nn.Parameter], d: Dist) -> None:
    """Sum gradients over ranks in one flat buffer (parameters no token reached on a rank count as zero)."""
    if not d.enabled:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset: offset + n].view_as(p.grad))
        offset += n


def broadcast_params(model: torch.nn.Module, d: Dist) -> None:
    """Make every rank start from rank 0's weights."""
    if d.enabled:
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)


def broadcast_object(obj, d: Dist):
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
