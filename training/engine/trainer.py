"""`FamilyTrainer`: what the driver needs from a family's trainer (its networks, optimizers and one training step).

Every family's trainer subclasses it (training/families/X/trainer.py) and is one `nn.Module` holding every
network, so the driver broadcasts it between ranks in one call. The driver (engine/driver.py) does the rest:
device, run folder, logs, the loop, sample grids, snapshots (engine/snapshots.py), Ctrl-C, torchrun.

The snapshot's optimizer.pt is the trainer's own payload (`snapshot_state`), so each family keeps the format its
earlier runs wrote and resumes them exactly. The default here is CycleGAN's and StarGAN's:

    {"family": NAME, "iteration": N, "trainer": training_state(), "rng": {"torch", "cuda"}, "data": ...}
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from munit_rt.training.engine import distributed


class FamilyTrainer(nn.Module):
    """Subclasses set `family` (the family's name) and `config` and fill in the methods below."""

    family: ClassVar[str]
    shown_losses: ClassVar[dict[str, str] | None] = None  # progress bar: {loss term: label}; None: the first four
    config: Any
    dist: distributed.Distributed = distributed.SINGLE  # set by the driver under torchrun

    # -- networks and the step -----------------------------------------------------------------------------
    def generators(self) -> dict[str, nn.Module]:
        """Keyed as the family's checkpoints store them (its generator_keys)."""
        raise NotImplementedError

    def discriminators(self) -> dict[str, nn.Module]:
        """Keyed as dis_XXXXXXXX.pt stores them."""
        raise NotImplementedError

    def train_step(self, batch: Any, iteration: int) -> dict[str, torch.Tensor]:
        """One iteration (1-based `iteration`, `batch` on the device): updates (`optimize`), then LR schedules;
        returns the loss terms."""
        raise NotImplementedError

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                 *also_zeroed: torch.optim.Optimizer) -> None:
        """One update: the gradients of `optimizer` (and of `also_zeroed`) zeroed, `loss` backpropagated, the
        gradients averaged across ranks under torchrun, then the step."""
        for opt in (optimizer, *also_zeroed):
            opt.zero_grad()
        loss.backward()
        self.dist.average_gradients(optimizer)
        optimizer.step()

    def lr(self) -> float:
        """The generator LR the next step uses (logged with its losses)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- sample grids ----------------------------------------------------------------------------------------
    def grids_due(self, iteration: int, final: bool) -> bool:
        """Whether sample grids are written after `iteration` (`final`: after the snapshot that ends a run).
        Default: every image_save_iter, and with the final snapshot."""
        return final or iteration % self.config.image_save_iter == 0

    def sample_grids(self, display: Any, iteration: int, final: bool) -> dict[str, list[torch.Tensor]]:
        """{file stem: rows ([N, C, H, W] in [-1, 1])} from the fixed display inputs; runs in eval mode under
        no_grad, and the driver restores the training RNG streams afterwards."""
        raise NotImplementedError

    # -- files beside the snapshot ------------------------------------------------------------------------------
    def upstream_files(self) -> dict[str, dict[str, torch.Tensor]]:
        """{file name: plain state dict} written into the checkpoint folder with every snapshot, replacing the
        previous snapshot's, under the names the family's upstream code reads (e.g. latest_net_G.pth), so its own
        test script runs on a munit-rt run. Default: none."""
        return {}

    # -- optimizer.pt ------------------------------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """Optimizer / scheduler / extra state (tensors and plain values only: loads with weights_only)."""
        raise NotImplementedError

    def load_training_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def snapshot_state(self, iteration: int, data_state: Any) -> dict[str, Any]:
        """The optimizer.pt payload: everything besides the weights that an exact resume needs."""
        return {"family": self.family, "iteration": iteration, "trainer": self.training_state(),
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
                "data": data_state}

    def holds_snapshot_state(self, state: Any, iteration: int) -> bool:
        """Whether `state` is this trainer's optimizer.pt of `iteration` (not another tool's or snapshot's)."""
        return isinstance(state, dict) and state.get("iteration") == iteration and state.get("family") == self.family

    def load_snapshot_state(self, state: dict[str, Any]) -> None:
        """Restore what `snapshot_state` wrote, except the data position (the driver's)."""
        self.load_training_state(state["trainer"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    # -- this process's noise, which differs between ranks (engine/distributed.py); families add their own ---
    def rank_state(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def seed_rank(self, seed: int) -> None:
        torch.manual_seed(seed)
