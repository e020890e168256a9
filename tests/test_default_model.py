"""The packaged default model (issue 7) and the tools around it.

The quality functions (scripts/quality.py) and the model card step (scripts/ship_default_model.py) are always
tested; the tests of the shipped model itself skip unless munit_rt/models/default is installed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

import munit_rt
from munit_rt.models import MODELS_DIR, default_model_path

REPO = Path(__file__).resolve().parents[1]

needs_default = pytest.mark.skipif(
    default_model_path() is None,
    reason="no default model installed in munit_rt/models/default (ship one: scripts/ship_default_model.py CKPT)")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


quality = load_script("quality")


# -- scripts/quality.py: hand-computed values ----------------------------------------------------------------
def constant(value: float, shape=(3, 4, 4)) -> np.ndarray:
    return np.full(shape, value, np.float32)


def test_pairwise_l1_of_constant_images():
    # pairs: |0 - 0.25| = 0.25, |0 - 1| = 1, |0.25 - 1| = 0.75 -> mean 2/3
    outputs = np.stack([constant(0.0), constant(0.25), constant(1.0)])
    assert quality.pairwise_l1(outputs) == pytest.approx(2 / 3)


def test_pairwise_l1_counts_every_pair_once():
    outputs = np.random.default_rng(0).random((8, 3, 5, 5))
    by_hand = [np.abs(outputs[i] - outputs[j]).mean() for i, j in combinations(range(8), 2)]
    assert len(by_hand) == 28
    assert quality.pairwise_l1(outputs) == pytest.approx(np.mean(by_hand))


def test_pairwise_l1_identical_outputs_is_zero_and_needs_two():
    assert quality.pairwise_l1(np.stack([constant(0.3)] * 4)) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        quality.pairwise_l1(constant(0.3)[None])


def test_style_diversity_averages_over_inputs():
    first = np.stack([constant(0.0), constant(1.0)])  # 1.0
    second = np.stack([constant(0.5), constant(0.5)])  # 0.0
    assert quality.style_diversity(np.stack([first, second])) == pytest.approx(0.5)


def test_reconstruction_l1():
    image = np.zeros((1, 3, 2, 2), np.float32)
    recon = image.copy()
    recon[0, 0] = 0.4  # one channel of three off by 0.4
    assert quality.reconstruction_l1(image, recon) == pytest.approx(0.4 / 3)
    with pytest.raises(ValueError, match="shapes differ"):
        quality.reconstruction_l1(image, recon[:, :2])


def test_to_unit_maps_model_range_and_clips():
    assert quality.to_unit(np.array([-1.0, 0.0, 1.0, 1.5, -3.0])).tolist() == [0.0, 0.5, 1.0, 1.0, 0.0]


def test_test_images_samples_list_and_falls_back_to_folder(tmp_path):
    for i in range(5):
        (tmp_path / "testA").mkdir(exist_ok=True)
        (tmp_path / "testA" / f"{i}.jpg").write_bytes(b"")
    listed = tmp_path / "test_a.txt"
    listed.write_text("testA/0.jpg\ntestA/3.jpg\ntestA/4.jpg\n")
    picked = quality.test_images(tmp_path, listed, "a", limit=2, seed=0)
    assert len(picked) == 2 and set(picked) <= {tmp_path / f"testA/{i}.jpg" for i in (0, 3, 4)}
    assert picked == quality.test_images(tmp_path, listed, "a", limit=2, seed=0)  # seeded
    assert len(quality.test_images(tmp_path, tmp_path / "missing.txt", "a", limit=64, seed=0)) == 5


# -- scripts/ship_default_model.py: the card is part of the verified bundle --------------------------------
def test_model_card_is_listed_and_verified(tiny, tmp_path):
    from munit_rt import Bundle
    from munit_rt.errors import BundleError

    ship = load_script("ship_default_model")
    bundle_dir = shutil.copytree(tiny[1], tmp_path / "card.bundle")
    ship.add_card(bundle_dir)
    card = (bundle_dir / ship.CARD_NAME).read_text(encoding="utf-8")
    assert "non-commercial" in card.lower() and "CVPR 2017" in card and "Iterations: 10" in card
    assert Bundle(bundle_dir).manifest.files[ship.CARD_NAME] == hashlib.sha256(card.encode()).hexdigest()
    (bundle_dir / ship.CARD_NAME).write_text(card + "edited\n", encoding="utf-8")
    with pytest.raises(BundleError, match="MODEL_CARD.md does not match"):
        Bundle(bundle_dir)


def test_ship_refuses_an_oversized_bundle_and_leaves_nothing(tiny, tmp_path, monkeypatch):
    from munit_rt.export import ExportError

    ship = load_script("ship_default_model")
    monkeypatch.setattr(ship, "MAX_MB", 0.0)
    with pytest.raises(ExportError, match="over the 0 MB limit"):
        ship.ship(tiny[0], tmp_path / "default", force=False)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from test_bundle import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory)


# -- the shipped model (issue 7) ---------------------------------------------------------------------------
@needs_default
def test_default_model_lives_in_the_imported_package(tmp_path):
    package = Path(munit_rt.__file__).resolve().parent
    assert MODELS_DIR.is_relative_to(package)
    assert default_model_path() == package / "models" / "default"
    # a fresh interpreter outside the repo finds it too: the installed package, not the working directory
    env = {k: v for k, v in os.environ.items() if k not in ("MUNIT_RT_MODEL", "PYTHONPATH")}
    code = ("import json, munit_rt; from munit_rt.models import default_model_path; "
            "print(json.dumps([munit_rt.__file__, str(default_model_path())]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    module_file, found = json.loads(result.stdout)
    assert Path(found) == Path(module_file).resolve().parent / "models" / "default" == package / "models" / "default"


@needs_default
def test_a_built_wheel_carries_the_default_model(tmp_path):
    # the editable install used by the suite reads the source tree; a real install gets only what the wheel
    # packs (pyproject package-data), so build one and load the model from where pip puts it
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "demo-out", "*.egg-info",
                                                                "build", "dist", "__pycache__", ".pytest_cache"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("munit_rt-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {**{k: v for k, v in os.environ.items() if k != "MUNIT_RT_MODEL"}, "PYTHONPATH": str(site)}
    code = ("import json, munit_rt; from munit_rt import Bundle; from munit_rt.models import default_model_path; "
            "path = default_model_path(); Bundle(path); print(json.dumps([munit_rt.__file__, str(path)]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    module_file, found = json.loads(result.stdout)
    assert Path(module_file).is_relative_to(site) and Path(found) == site / "munit_rt" / "models" / "default"


@needs_default
def test_shipped_manifest_hashes_verify():
    from munit_rt import Bundle

    path = default_model_path()
    bundle = Bundle(path)
    files = bundle.manifest.files
    for rel, sha in files.items():
        assert hashlib.sha256((path / rel).read_bytes()).hexdigest() == sha, rel
    for name, graph in bundle.graphs.items():
        for entry in graph.files.values():
            assert files[entry.path] == entry.sha256, name
    # every file of the bundle is covered (docs/bundle-format.md: all but manifest.json and engines/)
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    unlisted = {rel for rel in on_disk - set(files) if rel != "manifest.json" and not rel.startswith("engines/")}
    assert not unlisted, f"files not hashed in the manifest: {sorted(unlisted)}"


@needs_default
@pytest.mark.parametrize("domain, direction", [("a", "a2b"), ("b", "b2a")])
def test_default_model_translates_examples_into_distinct_styles(tmp_path, domain, direction):
    from click.testing import CliRunner
    from PIL import Image

    from munit_rt.cli import cli

    assert "MUNIT_RT_MODEL" not in os.environ  # conftest's no_model_env: the installed model is used
    inputs = sorted((REPO / "examples" / domain).glob("*.jpg"))
    assert len(inputs) == 4
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["translate", str(REPO / "examples" / domain), "--styles", "8",
                                      "--direction", direction, "-o", str(out)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    by_input: dict[Path, list[Path]] = {}
    for png in sorted(out.rglob("style_*.png")):
        by_input.setdefault(png.parent, []).append(png)
    assert len(by_input) == len(inputs) and all(len(styles) == 8 for styles in by_input.values())
    for folder, styles in by_input.items():
        raw = [p.read_bytes() for p in styles]
        pixels = [np.asarray(Image.open(p), np.float32) / 255.0 for p in styles]
        for i, j in combinations(range(8), 2):
            assert raw[i] != raw[j], f"{folder.name}: {styles[i].name} and {styles[j].name} are byte-identical"
            diff = np.abs(pixels[i] - pixels[j]).mean()
            assert diff > 1 / 255, f"{folder.name}: {styles[i].name} vs {styles[j].name} differ by {diff:.5f}"
