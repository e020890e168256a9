"""Training: data loading, init, updates, snapshots, exact resume and Ctrl-C (tiny config, CPU)."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config_dict, write_images, write_yaml  # noqa: E402
from munit_rt.preprocess import resize_shorter_side
from munit_rt.training.config import config_from_dict
from munit_rt.training.data import find_images
from munit_rt.training.engine.callbacks import TrainingCallback
from munit_rt.training.engine.driver import train
from munit_rt.training.errors import ConfigError, DataError
from munit_rt.training.families.munit.data import ImageDataset, open_training_data, preprocess
from munit_rt.training.families.munit.init import weights_init
from munit_rt.training.families.munit.model import AdaINGen, MsImageDis
from munit_rt.training.families.munit.trainer import MunitTrainer


@pytest.fixture
def data_dir(tmp_path) -> Path:
    root = tmp_path / "data"
    write_images(root / "trainA", 5, seed=1)
    write_images(root / "trainB", 7, size=(36, 44), seed=2)
    write_images(root / "testA", 2, seed=3)
    write_images(root / "testB", 2, seed=4)
    return root


def config_file(tmp_path, **overrides) -> Path:
    return write_yaml(tmp_path / "cfg.yaml", tiny_config_dict(**overrides))


def read_stats(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]


def prep(new_size: int):
    """MUNIT's preprocessing at `new_size` (what its training data loading applies)."""
    return preprocess(config_from_dict(tiny_config_dict(new_size=new_size)))


# ------------------------------------------------------------------------------------------------- data

def test_find_images_recursive_and_case_insensitive(tmp_path):
    write_images(tmp_path / "x", 1, ext=".PNG")
    write_images(tmp_path / "x" / "deep" / "er", 1, ext=".Jpeg")
    (tmp_path / "x" / "notes.txt").write_text("not an image")
    names = [p.relative_to(tmp_path / "x").as_posix() for p in find_images(tmp_path / "x")]
    assert names == ["deep/er/img0.Jpeg", "img0.PNG"]


def test_resize_matches_torchvision(tmp_path):
    transforms = pytest.importorskip("torchvision.transforms", reason="torchvision is the reference")
    img = Image.open(write_images(tmp_path, 1, size=(40, 36))[0]).convert("RGB")
    ours, theirs = resize_shorter_side(img, 32, prep(32).resample), transforms.Resize(32)(img)
    assert ours.size == theirs.size == (35, 32)  # int(32 * 40 / 36)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_dataset_normalises_crops_and_converts_gray(tmp_path):
    white = tmp_path / "white.png"
    Image.new("RGB", (50, 40), (255, 0, 128)).save(white)
    rgb = ImageDataset([white], 3, prep(32), (32, 32), flip=True, seed=0, name="trainA")[(0, 0)]
    assert rgb.shape == (3, 32, 32)
    torch.testing.assert_close(rgb[:, 0, 0], torch.tensor([1.0, -1.0, 128 / 255 * 2 - 1]))
    gray = ImageDataset([white], 1, prep(16), (16, 16), flip=False, seed=0, name="trainA")[(0, 0)]
    luma = round(0.299 * 255 + 0.587 * 0 + 0.114 * 128) / 255  # ITU-R 601-2, as PIL's "L" conversion
    assert gray.shape == (1, 16, 16)
    assert abs(gray[0, 0, 0].item() - (luma * 2 - 1)) < 1.5 / 255


def test_augmentation_depends_only_on_seed_epoch_index(tmp_path):
    paths = write_images(tmp_path, 1, size=(60, 40))
    dataset = ImageDataset(paths, 3, prep(40), (32, 32), flip=True, seed=0, name="trainA")
    assert torch.equal(dataset[(0, 3)], dataset[(0, 3)])
    assert any(not torch.equal(dataset[(0, 0)], dataset[(0, e)]) for e in range(1, 6))


def test_list_file_variant(tmp_path):
    write_images(tmp_path / "imgs" / "a", 3)
    write_images(tmp_path / "imgs" / "b", 2)
    (tmp_path / "list_a.txt").write_text("a/img0.png\na/img2.png\n\n")
    (tmp_path / "list_b.txt").write_text("b/img1.png\nb/img0.png\n")
    config = config_from_dict(tiny_config_dict(
        data_folder_train_a=str(tmp_path / "imgs"), data_list_train_a=str(tmp_path / "list_a.txt"),
        data_folder_train_b=str(tmp_path / "imgs"), data_list_train_b=str(tmp_path / "list_b.txt")))
    data = open_training_data(config, None)
    assert [p.name for p in data.train["a"].paths] == ["img0.png", "img2.png"]
    assert [p.name for p in data.train["b"].paths] == ["img1.png", "img0.png"]
    assert data.test["a"] is data.train["a"]  # no test split: sample grids use training images


def test_truncated_image_from_worker_is_one_line_data_error(tmp_path, data_dir):
    broken = data_dir / "trainA" / "img3.png"
    broken.write_bytes(broken.read_bytes()[:200])  # header intact, pixels missing
    config = config_from_dict(tiny_config_dict(num_workers=1))
    batches = iter(open_training_data(config, data_dir).batches(config))
    with pytest.raises(DataError) as info:
        for _ in range(4):
            next(batches)
    assert "\n" not in str(info.value) and str(broken) in str(info.value)


# ------------------------------------------------------------------------------------------ init / steps

def test_weights_init_official_rules():
    torch.manual_seed(0)
    conv, linear = torch.nn.Conv2d(64, 64, 3), torch.nn.Linear(256, 128)
    for module in (conv, linear):
        torch.nn.init.constant_(module.bias, 1.0)
        weights_init("gaussian")(module)
        assert module.bias.abs().max() == 0
        assert abs(module.weight.std().item() - 0.02) < 0.002
    weights_init("kaiming")(conv)
    assert abs(conv.weight.std().item() - math.sqrt(2 / (64 * 9))) < 0.005
    before = conv.weight.clone()
    torch.nn.init.constant_(conv.bias, 1.0)
    weights_init("default")(conv)  # weights kept, bias still zeroed (official)
    assert torch.equal(conv.weight, before) and conv.bias.abs().max() == 0


def test_trainer_init_kaiming_generators_gaussian_discriminators(tiny_config):
    trainer = MunitTrainer(tiny_config)
    gen_conv = trainer.gen_a.enc_content.model[1].conv  # 8 -> 16, 4x4: fan_in 128
    assert abs(gen_conv.weight.std().item() - math.sqrt(2 / 128)) < 0.02
    dis_conv = trainer.dis_b.cnns[0][1].conv
    assert abs(dis_conv.weight.std().item() - 0.02) < 0.004
    assert all(m.bias.abs().max() == 0 for m in trainer.modules() if isinstance(m, torch.nn.Conv2d))


def test_updates_lower_reconstruction_loss_on_fixed_batch():
    config = config_from_dict(tiny_config_dict(lr=0.001))
    torch.manual_seed(0)
    trainer = MunitTrainer(config)
    # smooth images (upsampled 4x4 noise): reconstructible, unlike per-pixel noise
    x_a, x_b = (torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4) * 2 - 1, size=32, mode="bilinear")
                for _ in "ab")
    recon = []
    for _ in range(12):
        dis_losses = trainer.dis_update(x_a, x_b)
        losses = trainer.gen_update(x_a, x_b)
        recon.append((losses["loss_gen_recon_x_a"] + losses["loss_gen_recon_x_b"]).item())
    assert all(math.isfinite(v.item()) for v in {**dis_losses, **losses}.values())
    assert sum(recon[-3:]) / 3 < 0.7 * recon[0], recon


def test_generator_total_weights_every_term():
    config = config_from_dict(tiny_config_dict(recon_x_cyc_w=2.0, gan_w=0.5, recon_s_w=3.0))
    torch.manual_seed(0)
    trainer = MunitTrainer(config)
    losses = trainer.gen_update(torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1)
    weights = {"adv": 0.5, "recon_x": 10.0, "recon_s": 3.0, "recon_c": 1.0, "cycrecon_x": 2.0}
    expected = sum(w * losses[f"loss_gen_{name}_{d}"].item() for name, w in weights.items() for d in "ab")
    assert losses["loss_gen_total"].item() == pytest.approx(expected, rel=1e-6)


def _write_vgg_file(path: Path, layout: str) -> Path:
    from munit_rt.training.families.munit.vgg import _OFFICIAL_NAMES, Vgg16Relu53

    torch.manual_seed(0)
    state = Vgg16Relu53().state_dict()
    if layout == "official":
        convs = [k for k in state if k.endswith(".weight")]
        state = {f"{name}.{leaf}": state[k.replace('.weight', f'.{leaf}')]
                 for name, k in zip(_OFFICIAL_NAMES, convs) for leaf in ("weight", "bias")}
    torch.save(state, path)
    return path


@pytest.mark.parametrize("layout", ["torchvision", "official"])
def test_vgg_loss_from_local_file(tmp_path, layout):
    vgg_file = _write_vgg_file(tmp_path / "vgg16.pth", layout)
    config = config_from_dict(tiny_config_dict(vgg_w=1.0, vgg_model_path=str(vgg_file)))
    trainer = MunitTrainer(config)
    assert trainer.vgg.input_layout == layout
    assert not any(p.requires_grad for p in trainer.vgg.parameters())
    losses = trainer.gen_update(torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1)
    assert losses["loss_gen_vgg_a"].item() > 0 and math.isfinite(losses["loss_gen_total"].item())


def test_vgg_missing_file_is_config_error(tmp_path):
    config = config_from_dict(tiny_config_dict(vgg_w=1.0, vgg_model_path=str(tmp_path / "nope.pth")))
    with pytest.raises(ConfigError, match="vgg_model_path"):
        MunitTrainer(config)


# ------------------------------------------------------------------------------- loop, snapshots, resume

def test_snapshots_have_official_names_and_load_strictly(tmp_path, data_dir):
    run = tmp_path / "run"
    result = train(config_file(tmp_path, snapshot_save_iter=2), data_dir, run, max_iter=3)
    assert result.iteration == 3
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["dis_00000002.pt", "dis_00000003.pt", "gen_00000002.pt", "gen_00000003.pt", "optimizer.pt"]
    config = config_from_dict(tiny_config_dict())
    gens = torch.load(run / "checkpoints" / "gen_00000003.pt", weights_only=True)
    assert gens["munit_rt"]["iteration"] == 3
    for domain in ("a", "b"):
        AdaINGen(3, config.gen).load_state_dict(gens[domain], strict=True)
    dis = torch.load(run / "checkpoints" / "dis_00000003.pt", weights_only=True)
    MsImageDis(3, config.dis).load_state_dict(dis["b"], strict=True)
    state = torch.load(run / "checkpoints" / "optimizer.pt", weights_only=True)
    assert state["iteration"] == 3 and {"gen", "dis", "rng", "data"} <= set(state)
    assert (run / "config.yaml").is_file() and len(read_stats(run)) == 3


def test_resume_reproduces_uninterrupted_run(tmp_path, data_dir):
    # step LR every 2 iterations and the cycle loss on, so scheduler and every loss term are exercised;
    # 5 / 7 images at batch 2: 2 batches per epoch, so the resume point (3) is mid-epoch
    cfg = config_file(tmp_path, step_size=2, recon_x_cyc_w=1.0, log_iter=1)
    train(cfg, data_dir, tmp_path / "straight", max_iter=7)
    train(cfg, data_dir, tmp_path / "split", max_iter=3)
    train(cfg, data_dir, tmp_path / "split", max_iter=7, resume=True)
    straight, split = read_stats(tmp_path / "straight"), read_stats(tmp_path / "split")
    assert [s["iteration"] for s in split] == list(range(1, 8))
    assert [s["lr"] for s in straight] == pytest.approx([1e-4 * 0.5 ** (i // 2) for i in range(7)])
    for a, b in zip(straight, split):
        for key in a:
            if key.startswith("loss"):
                assert abs(a[key] - b[key]) <= 1e-6, (a["iteration"], key)


class InterruptAt(TrainingCallback):
    def __init__(self, iteration):
        self.iteration = iteration

    def on_step(self, iteration, scalars):
        if iteration == self.iteration:
            raise KeyboardInterrupt


def test_ctrl_c_writes_a_final_snapshot_that_resumes(tmp_path, data_dir):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(config_file(tmp_path), data_dir, run, max_iter=10, callbacks=(InterruptAt(2),))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "dis_00000002.pt", "gen_00000002.pt", "optimizer.pt"]
    result = train(config_file(tmp_path), data_dir, run, max_iter=3, resume=True)
    assert result.iteration == 3 and [s["iteration"] for s in read_stats(run)] == [1, 2, 3]


def test_sample_grids_written(tmp_path, data_dir):
    run = tmp_path / "run"
    train(config_file(tmp_path, image_save_iter=2, image_display_iter=2), data_dir, run, max_iter=2)
    names = sorted(p.name for p in (run / "images").iterdir())
    assert names == ["gen_a2b_test_00000002.png", "gen_a2b_train_00000002.png", "gen_a2b_train_current.png",
                     "gen_b2a_test_00000002.png", "gen_b2a_train_00000002.png", "gen_b2a_train_current.png"]
    grid = Image.open(run / "images" / "gen_a2b_test_00000002.png")
    assert grid.size == (2 * 32, 4 * 32)  # display_size columns; input, recon, two translations


def test_refuses_existing_run_and_resume_without_snapshot(tmp_path, data_dir):
    from munit_rt.training.errors import TrainingError

    with pytest.raises(TrainingError, match="no gen_XXXXXXXX.pt snapshot"):
        train(config_file(tmp_path), data_dir, tmp_path / "run", max_iter=1, resume=True)
    assert not (tmp_path / "run").exists()
    train(config_file(tmp_path), data_dir, tmp_path / "run", max_iter=1)
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        train(config_file(tmp_path), data_dir, tmp_path / "run", max_iter=2)


def test_display_batch_is_fixed(tmp_path):
    paths = write_images(tmp_path, 3, size=(50, 40))
    dataset = ImageDataset(paths, 3, prep(40), (32, 32), flip=True, seed=0, name="testA")
    assert dataset.display_batch(5).shape == (3, 3, 32, 32)  # capped at the images available
    assert torch.equal(dataset.display_batch(2), dataset.display_batch(2))
    random.seed(123)  # the global RNG plays no part
    assert torch.equal(dataset.display_batch(2), ImageDataset(paths, 3, prep(40), (32, 32), True, 0, "testA")
                       .display_batch(2))


def test_one_channel_domain_trains_and_samples(tmp_path):
    from munit_rt.training.data import save_image_grid

    config = config_from_dict(tiny_config_dict(input_dim_a=1))
    trainer = MunitTrainer(config)
    x_a, x_b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    trainer.dis_update(x_a, x_b)
    assert math.isfinite(trainer.gen_update(x_a, x_b)["loss_gen_total"].item())
    rows = trainer.sample(x_a, x_b, seed=0)
    assert [r.shape[1] for r in rows["a2b"]] == [1, 1, 3, 3] and [r.shape[1] for r in rows["b2a"]] == [3, 3, 1, 1]
    save_image_grid(rows["a2b"], tmp_path / "grid.png")
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (4 * 32, 2 * 32, 3)
    assert (grid[:32, :, 0] == grid[:32, :, 2]).all()  # gray input row shown as equal R, G, B


def test_stats_log_without_tensorboard(tmp_path, monkeypatch):
    import sys

    from munit_rt.training.engine.logs import StatsLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now fails
    with pytest.warns(UserWarning, match="TensorBoard logging skipped"):
        log = StatsLog(tmp_path, resumed_at=None)
    log.write(1, {"loss_gen_total": 2.5})
    log.close()
    lines = (tmp_path / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"iteration": 1, "loss_gen_total": 2.5}]
