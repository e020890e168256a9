"""pix2pix training through the one engine: aligned A|B pairs made by scripts/make_pairs.py from tiny generated
photos, upstream's recipe (training/configs/pix2pix_tiny.yaml: unet_128, ngf 4, 128 x 128 crops), snapshots in
munit-rt and upstream names, an exact resume after an interrupt, then export and translate of the result."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import translate  # noqa: E402
from PIL import Image

torch = pytest.importorskip("torch", reason="training needs torch (pip install 'munit-rt[train]')")

from munit_rt.training.config import load_config  # noqa: E402
from munit_rt.training.engine.callbacks import TrainingCallback  # noqa: E402
from munit_rt.training.engine.distributed import state_digest  # noqa: E402
from munit_rt.training.engine.driver import train  # noqa: E402
from munit_rt.training.errors import ConfigError, DataError  # noqa: E402
from munit_rt.training.families.pix2pix.data import AlignedDataset, open_training_data  # noqa: E402
from munit_rt.training.families.pix2pix.trainer import Pix2PixTrainer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "training" / "configs" / "pix2pix_tiny.yaml"
PAIR_SIZE = 64  # each half of a pair image; training resizes to load_size 136, then crops 128


def tiny(**overrides):
    import dataclasses

    return dataclasses.replace(load_config(TINY_YAML), **overrides)


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A light background with a dark box: edges to draw."""
    pixels = np.full((height, width, 3), 200, np.uint8)
    pixels[height // 5:3 * height // 4, width // 4:2 * width // 3] = rng.integers(0, 90, 3, dtype=np.uint8)
    return Image.fromarray(np.clip(pixels + rng.integers(-6, 7, pixels.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """train: 4 pairs, test: 2 (make_pairs.py on 6 photos)."""
    root = tmp_path_factory.mktemp("pix2pix_pairs")
    rng = np.random.default_rng(0)
    for i in range(6):
        photo(rng, 50 + 4 * i, 60).save(root / f"photo{i}.png")
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "make_pairs.py"), str(root), "-o",
                          str(root / "pairs"), "--size", str(PAIR_SIZE), "--val", "0", "--test", "0.34"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "train: 4, val: 0, test: 2 pairs" in run.stdout
    return root / "pairs"


def stats(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]


def weights_digest(path: Path, keys: tuple[str, ...]) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state_digest({key: state[key] for key in keys})


class InterruptAt(TrainingCallback):
    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_step(self, iteration, scalars):
        if iteration == self.iteration:
            raise KeyboardInterrupt


# -------------------------------------------------------------------------------------------- data

def test_a_and_b_get_the_same_crop_and_flip(tmp_path):
    """A pair whose halves are the same picture stays the same picture after the random crop and flip; with
    BtoA, B's half feeds the generator, so it has input_nc channels (grey here) and A's output_nc."""
    rng = np.random.default_rng(1)
    half = np.array(photo(rng, 40, 40))
    half[:, :5] = 0  # a dark left stripe: a flip moves it
    (tmp_path / "train").mkdir()
    Image.fromarray(np.concatenate([half, half], axis=1)).save(tmp_path / "train" / "pair.png")
    config = tiny(direction="AtoB")  # 136 -> 128: the stripe (17 px) is never cropped away
    dataset = AlignedDataset([tmp_path / "train" / "pair.png"], config, "train")
    flipped = set()
    for epoch in range(8):
        a, b = dataset[(0, epoch)]
        assert a.shape == b.shape == (3, 128, 128) and torch.equal(a, b)
        flipped.add(bool(a[:, :, -1].mean() < a[:, :, 0].mean()))
    assert flipped == {True, False}  # both draws happen
    grey = AlignedDataset([tmp_path / "train" / "pair.png"], tiny(input_nc=1, direction="BtoA"), "train")[(0, 0)]
    assert (grey[0].shape[0], grey[1].shape[0]) == (3, 1)  # A: output_nc, B: input_nc
    train_set, shown = open_training_data(config, tmp_path)
    assert shown is train_set  # no test/ or val/: the grids show training pairs


def test_missing_train_folder_and_bad_sizes(tmp_path):
    with pytest.raises(DataError, match=r"train: no such folder \(expected DATA/train with A\|B pair images"):
        open_training_data(tiny(), tmp_path)
    from munit_rt.training.config import config_from_dict

    with pytest.raises(ConfigError, match="'crop_size' must be a multiple of 256 for netG unet_256"):
        config_from_dict({"family": "pix2pix", "load_size": 286, "crop_size": 200})
    with pytest.raises(ConfigError, match="key 'direction' is 'AtoC'"):
        config_from_dict({"family": "pix2pix", "direction": "AtoC"})


# ------------------------------------------------------------------------------------------ trainer

def test_updates_lower_the_l1_loss_on_a_fixed_pair():
    torch.manual_seed(0)
    trainer = Pix2PixTrainer(tiny(lr=0.002, n_epochs=1, n_epochs_decay=3), iters_per_epoch=10)
    g = torch.Generator().manual_seed(1)
    a = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g) * 2 - 1, size=128, mode="bilinear")
    batch = {"AB": (a, -a.flip(3))}
    l1 = [trainer.train_step(batch, iteration)["loss_G_L1"].item() for iteration in range(1, 13)]
    assert sum(l1[-3:]) / 3 < 0.9 * l1[0], l1
    assert trainer.lr() == pytest.approx(0.002 * 0.75)  # one epoch done: the first decay epoch


# ------------------------------------------------------------------ train, resume, export, translate

@pytest.fixture(scope="module")
def runs(pairs, tmp_path_factory) -> dict[str, Path]:
    """5 iterations straight, and the same run interrupted (Ctrl-C) after iteration 3, then resumed; 4 training
    pairs: epoch 1 is iterations 1-4, the LR halves for epoch 2 (iteration 5)."""
    root = tmp_path_factory.mktemp("pix2pix_runs")
    state = torch.get_rng_state(), random.getstate()
    train(TINY_YAML, pairs, root / "straight", max_iter=5, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train(TINY_YAML, pairs, root / "split", max_iter=5, device="cpu", callbacks=(InterruptAt(3),))
    train(TINY_YAML, pairs, root / "split", max_iter=5, device="cpu", resume=True)
    torch.set_rng_state(state[0])
    random.setstate(state[1])
    return {"straight": root / "straight", "split": root / "split"}


def test_snapshots_in_munit_rt_and_upstream_names(runs):
    checkpoints = runs["straight"] / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "dis_00000005.pt", "latest_net_D.pth", "latest_net_G.pth", "optimizer.pt", "pix2pix_00000005.pt"]
    ours = torch.load(checkpoints / "pix2pix_00000005.pt", weights_only=True)
    upstream = torch.load(checkpoints / "latest_net_G.pth", weights_only=True)
    assert state_digest({"G": ours["G"]}) == state_digest({"G": upstream})  # plain state dicts, the same weights
    assert ours["munit_rt"]["family"] == "pix2pix" and ours["munit_rt"]["config"]["direction"] == "AtoB"
    assert state_digest({"D": torch.load(checkpoints / "dis_00000005.pt", weights_only=True)["D"]}) == \
        state_digest({"D": torch.load(checkpoints / "latest_net_D.pth", weights_only=True)})
    assert sorted(p.name for p in (runs["straight"] / "images").iterdir()) == ["pix2pix_AtoB_00000005.png"]
    grid = Image.open(runs["straight"] / "images" / "pix2pix_AtoB_00000005.png")
    assert grid.size == (2 * 128, 3 * 128)  # 2 test pairs: real A, fake B, real B


def test_interrupted_run_resumes_bit_exactly(runs):
    straight, split = stats(runs["straight"]), stats(runs["split"])
    assert [s["iteration"] for s in split] == [1, 2, 3, 4, 5]
    assert [s["lr"] for s in straight] == pytest.approx([2e-4] * 4 + [1e-4])
    for a, b in zip(straight, split, strict=True):
        assert {k: v for k, v in a.items() if k.startswith("loss")} == {k: v for k, v in b.items()
                                                                        if k.startswith("loss")}
    for name, keys in (("pix2pix_00000005.pt", ("G",)), ("dis_00000005.pt", ("D",))):
        assert weights_digest(runs["straight"] / "checkpoints" / name, keys) == \
            weights_digest(runs["split"] / "checkpoints" / name, keys)


def test_trained_model_exports_translates_and_resumes(runs, pairs, tmp_path):
    from click.testing import CliRunner

    from munit_rt.cli import cli

    checkpoints = runs["straight"] / "checkpoints"
    ours, upstream = tmp_path / "ours.bundle", tmp_path / "upstream.bundle"
    for ckpt, bundle in ((checkpoints / "pix2pix_00000005.pt", ours), (checkpoints / "latest_net_G.pth", upstream)):
        result = CliRunner().invoke(cli, ["export", str(ckpt), "-o", str(bundle), "--precision", "fp32"])
        assert result.exit_code == 0, result.output
    photos = pairs.parent
    code, output = translate(ours, photos, "--grid", "--direction", "b2a", "-o", tmp_path / "out")
    assert code == 0, output
    assert "note: --direction is ignored for pix2pix bundles" in output
    assert "6 inputs: 6 translated" in output
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").glob("*.png")) == \
        [f"photo{i}.png" for i in range(6)]
    assert (tmp_path / "out" / "photo0" / "grid.png").is_file()
    assert Image.open(tmp_path / "out" / "photo3.png").size == (128, 128)
    code, output = translate(ours, photos, "--grid", "-o", tmp_path / "out")
    assert code == 0 and "0 translated, 6 already done" in output, output
    # upstream's latest_net_G.pth of the same snapshot, exported with the config its shapes fix (and upstream's
    # crop_size 256, so --size 128 as trained): the same pixels
    code, output = translate(upstream, photos, "--size", 128, "-o", tmp_path / "upstream")
    assert code == 0, output
    for i in range(6):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"photo{i}.png")),
                              np.asarray(Image.open(tmp_path / "upstream" / f"photo{i}.png")))


# ------------------------------------------------------------------------------ --direction (upstream's option)

def test_direction_flag_trains_b_to_a(runs, pairs, tmp_path):
    """`train --direction BtoA` is upstream's --direction: the photo half becomes the input. The sample grid's rows
    (input, output, target) show it: BtoA's input row is AtoB's target row and the other way round."""
    from conftest import invoke

    code, output = invoke("train", "--config", TINY_YAML, "--data", pairs, "-o", tmp_path / "run", "--max-iter", 1,
                          "--device", "cpu", "--direction", "BtoA")
    assert code == 0, output
    snapshot = torch.load(tmp_path / "run" / "checkpoints" / "pix2pix_00000001.pt", weights_only=True)
    assert snapshot["munit_rt"]["config"]["direction"] == "BtoA"
    b2a = np.asarray(Image.open(tmp_path / "run" / "images" / "pix2pix_BtoA_00000001.png"))
    a2b = np.asarray(Image.open(runs["straight"] / "images" / "pix2pix_AtoB_00000005.png"))
    rows = lambda grid, k: grid[k * 128:(k + 1) * 128]  # noqa: E731 - rows of 128 px: input, output, target
    assert np.array_equal(rows(b2a, 0), rows(a2b, 2)) and np.array_equal(rows(b2a, 2), rows(a2b, 0))
    assert not np.array_equal(rows(a2b, 0), rows(a2b, 2))


@pytest.mark.parametrize("config, value, message", [
    (TINY_YAML, "XtoY", "Error: --direction: key 'direction' is 'XtoY'; expected one of AtoB, BtoA"),
    (REPO / "training" / "configs" / "tiny.yaml", "AtoB",
     "Error: --direction: the MUNIT config has no 'direction' key, so there is nothing to override; "
     "leave --direction out"),
])
def test_direction_flag_refusals(pairs, tmp_path, config, value, message):
    from conftest import invoke

    code, output = invoke("train", "--config", config, "--data", pairs, "-o", tmp_path / "run", "--max-iter", 1,
                          "--device", "cpu", "--direction", value)
    assert (code, output.strip()) == (2, message)
    assert not (tmp_path / "run").exists()
