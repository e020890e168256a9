"""A bundle of random weights, for tests and benchmarks: weights do not change the speed, and parity holds for
any weights, so no training is needed.

    from munit_rt.export.random_bundle import random_bundle
    bundle = random_bundle(family_name, work_dir, config={"gen": {"dim": 8}}, precision="both", seed=3)

The generators come from the family's own builders (torch.manual_seed(seed), then each generator key in order),
are saved as a munit-rt checkpoint OUT/<prefix>_<iteration>.pt and exported through `export_bundle` into its
default place beside it, OUT/<prefix>_<iteration>.bundle, whose path is returned.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def random_bundle(family_name: str, out_dir: str | Path, config: Any = None, precision: str = "fp32", seed: int = 0,
                  iteration: int = 0, **export_options: Any) -> Path:
    """Random weights -> munit-rt checkpoint -> `export_bundle`; returns the bundle's path.

    `config`: None (the family's defaults: upstream's sizes), a mapping of config keys (the `family` key may be
    left out), or a config object. `export_options` go to `export_bundle` (force, upsample, progress, ...)."""
    import torch

    from munit_rt.export.api import export_bundle
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.config import config_from_dict
    from munit_rt.training.registry import get_family

    family = get_family(family_name)
    if config is None:
        config = family.config_class()
    elif isinstance(config, dict):
        config = config_from_dict(config, source=f"random {family.name} config", family=family.name)
    torch.manual_seed(seed)
    generators = {key: family.build_generator(config, key).eval() for key in family.generator_keys}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / f"{family.snapshot_prefix}_{iteration:08d}.pt"
    save_checkpoint(checkpoint, family, generators, config, iteration)
    return Path(export_bundle(checkpoint, None, precision=precision, **export_options))
