"""One tiny bundle per registered family, for the contract suite.

`family_name` is parametrized over `munit_rt.training.registry.families()` when the suite is collected, so a
family package added under training/families/ is covered without a change here. Its tiny config comes from the
family (TrainingFamily.tiny_config: a mapping of config keys), else the family's defaults (upstream sizes:
slow, so a family should offer one).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_images
from contract.checks import IMAGES, Exported
from munit_rt.training.registry import families

def tiny_config(family) -> dict | None:
    """The family's own tiny config (TrainingFamily.tiny_config), else None (its defaults: slow)."""
    offered = getattr(family, "tiny_config", None)
    return dict(offered() if callable(offered) else offered) if offered is not None else None


@pytest.fixture(scope="session", params=sorted(families()))
def family_name(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def exported(family_name, tmp_path_factory) -> Exported:
    """Random weights at the tiny config -> munit-rt checkpoint -> bundle (fp32 + fp16), with the export defaults
    (atol 1e-4, min PSNR 40 dB)."""
    pytest.importorskip("torch", reason="bundles are exported from torch modules")
    pytest.importorskip("onnx", reason="export writes ONNX graphs")
    from munit_rt.export.random_bundle import random_bundle
    from munit_rt.training.registry import get_family

    family = get_family(family_name)
    root = tmp_path_factory.mktemp(f"contract_{family_name}")
    bundle = random_bundle(family_name, root / "run", tiny_config(family), precision="both", seed=5, iteration=7)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    return Exported(family_name, bundle, bundle.with_suffix(".pt"), manifest, root)


@pytest.fixture(scope="session")
def inputs(exported) -> Path:
    """A folder of IMAGES small RGB images, a little larger than the bundle's preprocessing size."""
    size = exported.manifest["preprocess"]["size"]
    folder = exported.root / "inputs"
    if not folder.is_dir():
        write_images(folder, IMAGES, size=(size + 8, size + 4), seed=3)
    return folder
