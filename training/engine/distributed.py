"""Data-parallel training under torchrun (one process per GPU, any number of nodes), for every family.

    torchrun --nproc_per_node 4 --no-python munit-rt train --config CFG.yaml --data DIR --out RUN
    torchrun --nnodes 2 --node_rank R --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29400 \
        --no-python munit-rt train ...

Detection: WORLD_SIZE > 1 in the environment (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK). Otherwise
`Distributed()` (one process) is used, every method below is a no-op, and training is exactly what it was.
Backend: NCCL on CUDA (each process on cuda:LOCAL_RANK), gloo on CPU.

How gradients are shared. The trainers call submodules several times per update (MUNIT's gen_update runs
encode/decode of both generators six to eight times, CycleGAN each generator three times, StarGAN a gradient
penalty through a double backward), and step optimizers over parameters of several networks. Wrapping the
networks in DistributedDataParallel would bypass its forward hooks (calling `gen.encode` is not
`gen.forward`) or trip its one-forward-per-backward bookkeeping. Instead each optimizer step is preceded by
`average_gradients(optimizer)`: the gradients of that optimizer's parameters are flattened into buckets and
all-reduced (sum / world size), which is the update DDP computes, for any call pattern. Weights start equal
(broadcast from rank 0 after construction or resume) and every rank applies the same averaged gradient with
identical optimizer state, so weights stay identical; buffers (running statistics) are broadcast from rank 0
after every iteration, as DDP does before each forward. The price against DDP: communication does not overlap
the backward pass.

Data and noise. Every rank builds the same shuffled order of each epoch from (seed, name, epoch); global step
k takes the next batch_size x world_size indices of it and rank r its r-th slice of batch_size (so the
effective batch is batch_size x world_size; learning rates are not scaled). Rank 0 keeps the config's seeds,
so its streams equal a single-process run's; rank r > 0 reseeds its noise (style codes, torch's global RNG,
CycleGAN's image pools) from (seed, rank). Snapshots gather the ranks' noise state into optimizer.pt, so a
resume with the same number of processes continues every stream exactly.

Files. Rank 0 alone writes the run folder (config, logs, sample grids, snapshots); the others wait at a
barrier after each snapshot. Logged losses are the mean over ranks. Resuming reads the snapshot on every
rank, so across nodes the run folder must be on a shared filesystem. With MUNIT_RT_RANK_DIGEST=1 each rank
writes RUN/logs/rank<k>.json at the end: sha256 of its generator and discriminator weights and its last
local losses (what the tests compare across ranks).

Stopping. SIGINT/SIGTERM (torchrun forwards Ctrl-C; schedulers preempt with SIGTERM) set a flag that is
all-reduced with each iteration's losses, so every rank stops after the same iteration and the final snapshot
is written once; a second signal stops at once, without a snapshot.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import signal
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from munit_rt.training.errors import TrainingError

ENV_DIGEST = "MUNIT_RT_RANK_DIGEST"
BUCKET_BYTES = 25 << 20  # as DDP's default bucket_cap_mb


class CoordinatedStop(KeyboardInterrupt):
    """Raised on every rank after the same iteration when any rank got SIGINT/SIGTERM."""


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) without it."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise TrainingError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers ({exc})") from None
    if world < 1 or not 0 <= rank < world:
        raise TrainingError(f"RANK {rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE {world})")
    return rank, world, local


@dataclass
class Distributed:
    """This process's place in the job; the one-process default makes every method a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we destroy it
    _stop: list = field(default_factory=list, repr=False)  # signals received (SIGINT/SIGTERM)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- seeds -------------------------------------------------------------------------------------------
    def rank_seed(self, seed: int, salt: int = 0) -> int:
        """The seed of this rank's noise: the config's on rank 0, a hash of (seed, rank[, salt]) elsewhere."""
        if self.rank == 0 and salt == 0:
            return seed
        digest = hashlib.sha256(f"munit-rt/{seed}/rank{self.rank}/{salt}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)

    # -- collectives -------------------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """All-reduce the mean gradient of the optimizer's parameters (those with a gradient: the same set on
        every rank, since every rank runs the same code on the same parameters)."""
        if not self.enabled:
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        for bucket in _buckets(grads):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            torch.distributed.all_reduce(flat)
            flat.div_(self.world_size)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def broadcast_module(self, module: nn.Module, buffers_only: bool = False) -> None:
        """Rank 0's parameters and buffers (or only buffers) onto every rank, in place."""
        if not self.enabled:
            return
        tensors = list(module.buffers()) + ([] if buffers_only else list(module.parameters()))
        with torch.no_grad():
            for bucket in _buckets([t.data for t in tensors]):
                flat = torch.cat([t.reshape(-1) for t in bucket])
                torch.distributed.broadcast(flat, src=0)
                offset = 0
                for t in bucket:
                    t.copy_(flat[offset:offset + t.numel()].view_as(t))
                    offset += t.numel()

    def reduce_step(self, scalars: Mapping[str, float], device: torch.device) -> tuple[dict[str, float], bool]:
        """(the mean of each scalar over ranks, whether any rank asked to stop) in one all-reduce."""
        if not self.enabled:
            return dict(scalars), False
        names = list(scalars)
        values = torch.tensor([float(scalars[n]) for n in names] + [float(bool(self._stop))], dtype=torch.float64,
                              device=device)
        torch.distributed.all_reduce(values)
        mean = (values[:-1] / self.world_size).tolist()
        return dict(zip(names, mean)), bool(values[-1].item() > 0)

    def gather_to_main(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` on rank 0 (a list by rank); None on the others and in a single process."""
        if not self.enabled:
            return None
        out = [None] * self.world_size if self.is_main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def decide_on_main(self, func: Callable[[], Any]) -> Any:
        """Run `func` on rank 0 and hand its result (or its exception) to every rank, so a check that fails
        on rank 0 (run folder, resume point) stops every rank with the same message instead of a hang."""
        if not self.enabled:
            return func()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", func())
            except Exception as exc:  # noqa: BLE001 - forwarded, then re-raised everywhere
                try:
                    pickle.dumps(exc)
                except Exception:  # noqa: BLE001 - an exception that cannot travel: its message can
                    exc = TrainingError(f"{type(exc).__name__}: {exc}")
                box[0] = ("error", exc)
        torch.distributed.broadcast_object_list(box, src=0)
        status, value = box[0]
        if status == "error":
            raise value
        return value

    # -- stopping ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def stop_on_signals(self):
        """Distributed runs: the first SIGINT/SIGTERM sets a flag (shared by reduce_step), a second one raises
        KeyboardInterrupt at once. One process: nothing (the loop keeps its own Ctrl-C handling)."""
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum, _frame):
            if self._stop:
                raise KeyboardInterrupt
            self._stop.append(signum)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    # -- end of run --------------------------------------------------------------------------------------
    def write_digest(self, run_dir: Path, generators: Mapping[str, nn.Module], discriminators: Mapping[str, nn.Module],
                     local_scalars: Mapping[str, float]) -> None:
        """RUN/logs/rank<k>.json with the weights' sha256, when MUNIT_RT_RANK_DIGEST=1 (tests, debugging)."""
        if os.environ.get(ENV_DIGEST) != "1":
            return
        record = {"rank": self.rank, "world_size": self.world_size,
                  "generators": state_digest({k: m.state_dict() for k, m in generators.items()}),
                  "discriminators": state_digest({k: m.state_dict() for k, m in discriminators.items()}),
                  "local_losses": dict(local_scalars)}
        path = Path(run_dir) / "logs" / f"rank{self.rank}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    def shutdown(self) -> None:
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        self.owns_group = False


SINGLE = Distributed()


def setup(device: torch.device, timeout_minutes: float = 30.0) -> tuple[Distributed, torch.device]:
    """Join torchrun's process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU) and return this rank's
    context and device (cuda:LOCAL_RANK); without torchrun, (Distributed(), device) unchanged."""
    rank, world, local = env_world()
    if world == 1:
        return Distributed(), device
    if not torch.distributed.is_available():
        raise TrainingError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise TrainingError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices are visible; "
                                "use --nproc_per_node <= the GPUs per node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = not torch.distributed.is_initialized()
    if owns:
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        torch.distributed.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes), **kwargs)
    if torch.distributed.get_world_size() != world or torch.distributed.get_rank() != rank:
        raise TrainingError("the process group disagrees with WORLD_SIZE/RANK")
    return Distributed(rank=rank, world_size=world, local_rank=local, owns_group=owns), device


def restore_rank(trainer: Any, state: Mapping[str, Any], iteration: int, seed: int) -> int:
    """After a snapshot's state (rank 0's streams) is loaded into `trainer`: this rank's own noise, saved by
    the ranks of a run with the same world size, else (rank > 0) fresh streams from (seed, rank, iteration).
    Returns the world size the snapshot was written with (1 for single-process snapshots)."""
    dist = trainer.dist
    block = state.get("distributed") or {}
    saved_world, ranks = int(block.get("world_size", 1)), block.get("ranks")
    if dist.enabled:
        if saved_world == dist.world_size and ranks:
            trainer.load_rank_state(ranks[dist.rank])
        elif dist.rank > 0:
            trainer.seed_rank(dist.rank_seed(seed, salt=iteration))
    return saved_world


def check_readable(dist: Distributed, snapshot: Path | None) -> None:
    """Every rank must read the snapshot rank 0 resumes from (a shared filesystem across nodes)."""
    if not dist.enabled or snapshot is None:
        return
    readable = torch.tensor([1.0 if Path(snapshot).is_file() else 0.0])
    if torch.distributed.get_backend() == "nccl":
        readable = readable.cuda()
    torch.distributed.all_reduce(readable, op=torch.distributed.ReduceOp.MIN)
    if readable.item() < 1:
        raise TrainingError(f"--resume: some ranks cannot read {snapshot}; with several nodes the run folder "
                            "(--out) must be on a filesystem every node shares")


def rescale_position(batches_done: int, saved_world: int, world: int) -> int:
    """Steps done in the current epoch, counted for `world` processes instead of `saved_world` (each step
    takes batch_size x world_size images); exact when both agree, else rounded down to a whole step."""
    return batches_done if saved_world == world else batches_done * saved_world // world


def state_digest(state_dicts: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    """sha256 over (key, tensor name, dtype, shape, bytes) of state dicts, in sorted order: equal digests mean
    bit-identical weights. Checkpoint files give the same digest for the modules they were saved from."""
    digest = hashlib.sha256()
    for key in sorted(state_dicts):
        for name in sorted(state_dicts[key]):
            tensor = state_dicts[key][name].detach().cpu().contiguous()
            digest.update(f"{key}/{name}/{tensor.dtype}/{tuple(tensor.shape)}\n".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _buckets(tensors: Iterable[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Consecutive groups of tensors with one dtype and device, each up to BUCKET_BYTES (one all-reduce each)."""
    buckets: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        last, nbytes = (buckets[-1] if buckets else None), t.numel() * t.element_size()
        if last is None or last[0].dtype != t.dtype or last[0].device != t.device or size + nbytes > BUCKET_BYTES:
            buckets.append([t])
            size = nbytes
        else:
            last.append(t)
            size += nbytes
    return buckets
