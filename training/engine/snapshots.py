"""Training snapshots of every family: one save/load pair, in the official file names.

    RUN/checkpoints/dis_%08d.pt       the discriminators' state dicts under their upstream names
    RUN/checkpoints/optimizer.pt      the trainer's own payload (FamilyTrainer.snapshot_state): optimizers,
                                      schedulers, RNG and data position of the newest snapshot, and under torchrun
                                      every rank's noise
    RUN/checkpoints/<upstream names>  plain state dicts under the family's upstream file names, if it has any
                                      (FamilyTrainer.upstream_files; replaced by every snapshot)
    RUN/checkpoints/<prefix>_%08d.pt  the generators + config + iteration (training.checkpoint.save_checkpoint;
                                      MUNIT: gen_%08d.pt), written last: it exists only once its snapshot is whole

The newest <prefix>_XXXXXXXX.pt is what `--resume` continues, as the official `get_model_list` picks it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from munit_rt.training.checkpoint import atomic_torch_save, save_checkpoint, torch_load
from munit_rt.training.engine import distributed
from munit_rt.training.engine.trainer import FamilyTrainer
from munit_rt.training.errors import CheckpointError, TrainingError
from munit_rt.training.family import TrainingFamily
from munit_rt.training.weights import load_state_dict_strict


def snapshot_pattern(prefix: str) -> re.Pattern:
    """<prefix>_XXXXXXXX.pt, the file written last in a snapshot."""
    return re.compile(rf"^{prefix}_(\d{{8}})\.pt$")


def latest_snapshot(checkpoint_dir: Path, prefix: str) -> Path | None:
    """The newest <prefix>_XXXXXXXX.pt, as the official `get_model_list`."""
    if not checkpoint_dir.is_dir():
        return None
    pattern = snapshot_pattern(prefix)
    names = sorted(p.name for p in checkpoint_dir.iterdir() if pattern.match(p.name))
    return checkpoint_dir / names[-1] if names else None


def resume_point(run_dir: Path, prefix: str, resume: bool) -> Path | None:
    """The snapshot to resume from (None for a fresh run); refuses to mix runs."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"--output {run_dir}: exists and is not a folder")
    snapshot = latest_snapshot(run_dir / "checkpoints", prefix)
    if snapshot is not None and not resume:
        raise TrainingError(f"--output {run_dir}: already holds checkpoints ({snapshot.name}); pass --resume "
                            "to continue that run, or choose another -o")
    if snapshot is None and resume:
        raise TrainingError(f"--resume: no {prefix}_XXXXXXXX.pt snapshot in {run_dir / 'checkpoints'}")
    return snapshot


def save_snapshot(family: TrainingFamily, trainer: FamilyTrainer, batches: Any, checkpoint_dir: Path,
                  iteration: int) -> None:
    """dis, optimizer, upstream-named files, then the generators last. Distributed: every rank calls this; rank 0
    writes, with the ranks' noise states, the others wait."""
    dist = trainer.dist
    ranks = dist.gather_to_main(trainer.rank_state())
    if dist.is_main:
        atomic_torch_save({key: net.state_dict() for key, net in trainer.discriminators().items()},
                          checkpoint_dir / f"dis_{iteration:08d}.pt")
        state = trainer.snapshot_state(iteration, batches.state_dict())
        if ranks is not None:
            state["distributed"] = {"world_size": dist.world_size, "ranks": ranks}
        atomic_torch_save(state, checkpoint_dir / "optimizer.pt")
        for name, weights in trainer.upstream_files().items():
            atomic_torch_save(weights, checkpoint_dir / name)
        save_checkpoint(checkpoint_dir / f"{family.snapshot_prefix}_{iteration:08d}.pt", family,
                        trainer.generators(), trainer.config, iteration)
    dist.barrier()


def load_snapshot(family: TrainingFamily, trainer: FamilyTrainer, batches: Any, gen_path: Path) -> int:
    """Restore weights, optimizers, schedulers, RNG and data position; return the iteration."""
    iteration = int(snapshot_pattern(family.snapshot_prefix).match(gen_path.name).group(1))
    dis_path, state_path = gen_path.with_name(f"dis_{iteration:08d}.pt"), gen_path.with_name("optimizer.pt")
    gens, diss, state = torch_load(gen_path), torch_load(dis_path), torch_load(state_path)
    for path, weights, nets in ((gen_path, gens, trainer.generators()), (dis_path, diss, trainer.discriminators())):
        if not (isinstance(weights, dict) and set(nets) <= set(weights)):
            labels = " and ".join(family.weight_label(key) for key in nets)
            raise CheckpointError(f"{path}: expected the state dicts of {labels}")
    if not trainer.holds_snapshot_state(state, iteration):
        raise CheckpointError(f"{state_path}: does not hold the munit-rt training state of {gen_path.name} "
                              "(written by another tool or another snapshot); cannot resume exactly")
    for key, net in trainer.generators().items():
        load_state_dict_strict(net, family.remap(gens[key], net), f"{gen_path} [{family.weight_label(key)}]")
    for key, net in trainer.discriminators().items():
        load_state_dict_strict(net, diss[key], f"{dis_path} [{family.weight_label(key)}]")
    try:
        trainer.load_snapshot_state(state)
        batches.load_state_dict(state["data"])
        saved_world = distributed.restore_rank(trainer, state, iteration, trainer.config.seed)
        batches.rescale(saved_world, trainer.dist.world_size)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{state_path}: cannot restore the training state ({exc})") from None
    return iteration
