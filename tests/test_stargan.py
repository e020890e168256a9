"""StarGAN: upstream weight layout, label tiling, per-image instance norm, attribute files, mask vector,
training, checkpoints, CLI (tiny, CPU)."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn
from torch.nn import functional as F

from munit_rt.training.checkpoint import read_checkpoint, save_checkpoint
from munit_rt.training.config import config_from_dict
from munit_rt.training.errors import CheckpointError, ConfigError, DataError
from munit_rt.training.families.stargan.config import StarGanConfig
from munit_rt.training.families.stargan.data import (open_training_data, read_attribute_file, select_labels,
                                                     split_entries)
from munit_rt.training.families.stargan.model import Discriminator, Generator, InputStatsInstanceNorm2d
from munit_rt.training.families.stargan.trainer import StarGanTrainer, gradient_penalty, lr_factor
from munit_rt.training.registry import load_generators

ATTRS = ("Bangs", "Smiling", "Male")


def tiny(**overrides) -> StarGanConfig:
    data = {"family": "stargan", "image_size": 32, "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1,
            "d_repeat_num": 3, "batch_size": 2, "num_iters": 10, "num_iters_decay": 5, "lr_update_step": 1,
            "n_critic": 1, "selected_attrs": list(ATTRS), "crop_size": 36, "test_count": 1, "num_workers": 0,
            "log_iter": 1, "image_save_iter": 1000, "snapshot_save_iter": 1000, "display_size": 2}
    return config_from_dict({**data, **overrides})


def upstream_keys_dim8_c3_rep2(num_batches_tracked: bool = True) -> dict[str, tuple]:
    """yunjey Generator(conv_dim=8, c_dim=3, repeat_num=2), written out from its layer list:
    0 conv7, 1 IN, 2 ReLU | 3-5, 6-8 down | 9, 10 ResidualBlock (main: 0 conv, 1 IN, 2 ReLU, 3 conv, 4 IN)
    | 11-13, 14-16 up (ConvTranspose weights are [in, out, k, k]) | 17 conv7, 18 tanh. No conv has a bias;
    every InstanceNorm is affine with running statistics."""
    def norm(name, channels):
        keys = {f"{name}.{leaf}": (channels,) for leaf in ("weight", "bias", "running_mean", "running_var")}
        if num_batches_tracked:
            keys[f"{name}.num_batches_tracked"] = ()
        return keys

    keys = {"main.0.weight": (8, 6, 7, 7), **norm("main.1", 8), "main.3.weight": (16, 8, 4, 4), **norm("main.4", 16),
            "main.6.weight": (32, 16, 4, 4), **norm("main.7", 32)}
    for block in (9, 10):
        keys.update({f"main.{block}.main.0.weight": (32, 32, 3, 3), **norm(f"main.{block}.main.1", 32),
                     f"main.{block}.main.3.weight": (32, 32, 3, 3), **norm(f"main.{block}.main.4", 32)})
    keys.update({"main.11.weight": (32, 16, 4, 4), **norm("main.12", 16), "main.14.weight": (16, 8, 4, 4),
                 **norm("main.15", 8), "main.17.weight": (3, 8, 7, 7)})
    return keys


def random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


# ----------------------------------------------------------------------------------- upstream layout

def test_generator_keys_equal_upstream():
    expected = upstream_keys_dim8_c3_rep2()
    gen = Generator(conv_dim=8, c_dim=3, repeat_num=2)
    assert {k: tuple(v.shape) for k, v in gen.state_dict().items()} == expected
    assert list(gen.state_dict()) == list(expected)
    assert sum(p.numel() for p in Generator().parameters()) == 8_430_528  # upstream's published count


@pytest.mark.parametrize("with_tracked", [True, False], ids=["torch>=0.4.1", "torch0.4.0"])
def test_upstream_file_loads_with_and_without_num_batches_tracked(tmp_path, with_tracked):
    state = random_state(upstream_keys_dim8_c3_rep2(with_tracked))
    path = tmp_path / "200000-G.ckpt"
    torch.save(state, path)
    config = tiny(g_conv_dim=8, g_repeat_num=2, selected_attrs=list(ATTRS))
    ckpt = read_checkpoint(path, config=config)
    assert (ckpt.family, ckpt.source_format, ckpt.iteration) == ("stargan", "official", 200000)
    loaded = load_generators(ckpt)["G"].state_dict()
    torch.testing.assert_close(loaded["main.17.weight"], state["main.17.weight"])
    torch.testing.assert_close(loaded["main.12.running_var"], state["main.12.running_var"])


def test_upstream_defaults_and_wrong_config(tmp_path):
    torch.save(random_state(upstream_keys_dim8_c3_rep2()), tmp_path / "200000-G.ckpt")
    ckpt = read_checkpoint(tmp_path / "200000-G.ckpt")
    assert ckpt.config == StarGanConfig() and ckpt.config.c_dim == 5
    with pytest.raises(CheckpointError, match="upstream defaults do not fit"):
        load_generators(ckpt)
    with pytest.raises(CheckpointError, match="main.0.weight"):  # 4 labels: 7 input channels, not 6
        load_generators(read_checkpoint(tmp_path / "200000-G.ckpt",
                                            config=tiny(g_repeat_num=2, selected_attrs=["a", "b", "c", "d"])))


def test_discriminator_heads():
    dis = Discriminator(image_size=32, conv_dim=8, c_dim=3, repeat_num=3)
    assert {k: tuple(v.shape) for k, v in dis.state_dict().items()} == {
        "main.0.weight": (8, 3, 4, 4), "main.0.bias": (8,), "main.2.weight": (16, 8, 4, 4), "main.2.bias": (16,),
        "main.4.weight": (32, 16, 4, 4), "main.4.bias": (32,), "conv1.weight": (1, 32, 3, 3),
        "conv2.weight": (3, 32, 4, 4)}
    out_src, out_cls = dis(torch.zeros(2, 3, 32, 32))
    assert out_src.shape == (2, 1, 4, 4) and out_cls.shape == (2, 3)


# ------------------------------------------------------------------------- labels and instance norm

def test_labels_are_tiled_over_the_image():
    gen = Generator(conv_dim=4, c_dim=3, repeat_num=1)
    seen = []
    gen.main[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    x, c = torch.rand(2, 3, 8, 12), torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]])
    gen(x, c)
    expected = torch.cat([x, c[:, :, None, None] * torch.ones(2, 3, 8, 12)], dim=1)
    assert torch.equal(seen[0], expected)


def test_instance_norm_uses_per_image_statistics_in_every_mode():
    torch.manual_seed(0)
    gen = Generator(conv_dim=4, c_dim=3, repeat_num=1)
    for m in gen.modules():  # running statistics far from any image's, as in a trained upstream file
        if isinstance(m, InputStatsInstanceNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(2, 3)
    x, c = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3).round()
    running = [m.running_mean.clone() for m in gen.modules() if isinstance(m, InputStatsInstanceNorm2d)]
    with torch.no_grad():
        batch = gen.eval()(x, c)
        assert torch.equal(running[0], gen.main[1].running_mean)  # eval never touches the buffers
        for i in range(3):  # one image's output does not depend on the rest of the batch
            torch.testing.assert_close(batch[i:i + 1], gen(x[i:i + 1], c[i:i + 1]), atol=1e-6, rtol=0)
        # upstream semantics: nn.InstanceNorm2d in train mode (upstream's test code never calls eval())
        reference = Generator(conv_dim=4, c_dim=3, repeat_num=1)
        reference.load_state_dict(gen.state_dict())
        for m in reference.modules():
            if isinstance(m, InputStatsInstanceNorm2d):
                m.__class__ = nn.InstanceNorm2d
        torch.testing.assert_close(batch, reference.train()(x, c), atol=1e-6, rtol=0)
        assert (batch - reference.eval()(x, c)).abs().max() > 0.1  # what eval() with running stats would give


def test_training_mode_updates_running_statistics_like_upstream():
    norm = InputStatsInstanceNorm2d(2)
    x = torch.randn(4, 2, 5, 5) * 3 + 1
    norm.train()(x)
    reference = nn.InstanceNorm2d(2, affine=True, track_running_stats=True).train()
    reference(x)
    torch.testing.assert_close(norm.running_mean, reference.running_mean)
    torch.testing.assert_close(norm.running_var, reference.running_var)


# ------------------------------------------------------------------------------------ attribute data

def write_dataset(root: Path, attrs=ATTRS, count: int = 5, seed: int = 0) -> Path:
    """Images in a subfolder, listed in a CelebA-format attribute file with relative paths."""
    rng = np.random.default_rng(seed)
    (root / "sub").mkdir(parents=True, exist_ok=True)
    lines = [str(count), " ".join(attrs)]
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(root / "sub" / f"{seed}_{i}.png")
        lines.append(f"sub/{seed}_{i}.png " + " ".join(" 1" if (i + j) % 2 else "-1" for j in range(len(attrs))))
    (root / f"attrs{seed}.txt").write_text("\n".join(lines) + "\n")
    return root / f"attrs{seed}.txt"


def test_attribute_file_labels_split_and_errors(tmp_path):
    attributes = read_attribute_file(write_dataset(tmp_path))
    assert attributes.names == ATTRS and attributes.entries[1] == ("sub/0_1.png", (1, -1, 1))
    labels = select_labels(attributes, ("Male", "Bangs"))
    assert labels[0] == ("sub/0_0.png", [0.0, 0.0]) and labels[1] == ("sub/0_1.png", [1.0, 1.0])
    train_set, test_set = split_entries(labels, test_count=2, split_seed=None)
    assert [e[0] for e in test_set] == ["sub/0_3.png", "sub/0_4.png"] and len(train_set) == 3
    shuffled = split_entries(labels, test_count=2, split_seed=1234)
    assert sorted(shuffled[0] + shuffled[1]) == sorted(labels) and shuffled == split_entries(labels, 2, 1234)
    with pytest.raises(DataError, match="unknown attribute 'Blond_Hair'.*Bangs, Smiling, Male"):
        select_labels(attributes, ("Male", "Blond_Hair"))
    (tmp_path / "bad.txt").write_text("1\nA B\nimg.png 1\n")
    with pytest.raises(DataError, match="line 3 has 1 values for 2 attributes"):
        read_attribute_file(tmp_path / "bad.txt")


def test_dataset_items_crop_resize_and_labels(tmp_path):
    attr_path = write_dataset(tmp_path)
    config = tiny(image_dir=str(tmp_path), attr_path=str(attr_path), split_seed=None, flip=False)
    (train_set, test_set), = open_training_data(config, None)
    image, label = train_set[(1, 0)]
    assert image.shape == (3, 32, 32) and -1 <= image.min() and image.max() <= 1
    assert label.tolist() == [1.0, 0.0, 1.0] and len(train_set) == 4 and len(test_set) == 1
    with Image.open(tmp_path / "sub" / "0_1.png") as img:  # center crop 36 of 40x36, then bilinear to 32
        expected = np.asarray(img.crop((2, 0, 38, 36)).resize((32, 32), Image.BILINEAR), dtype=np.float32)
    torch.testing.assert_close(image, torch.from_numpy(expected).permute(2, 0, 1) / 127.5 - 1, atol=1e-6, rtol=0)


# -------------------------------------------------------------------------------------------- training

def test_mask_vector_for_two_datasets():
    config = tiny(selected_attrs_2=["Happy", "Sad"], attr_path_2="x.txt")
    assert (config.c_dim, config.cls_dim) == (3 + 2 + 2, 5)
    trainer = StarGanTrainer(config)
    assert trainer.G.main[0].weight.shape[1] == 3 + 7 and trainer.D.conv2.weight.shape[0] == 5
    first = trainer.generator_labels(torch.tensor([[1.0, 0.0, 1.0]]), dataset=0)
    second = trainer.generator_labels(torch.tensor([[0.0, 1.0]]), dataset=1)
    assert first.tolist() == [[1, 0, 1, 0, 0, 1, 0]] and second.tolist() == [[0, 0, 0, 0, 1, 0, 1]]


def test_lr_decays_linearly_to_zero_over_the_last_iterations():
    config = tiny(num_iters=10, num_iters_decay=4, lr_update_step=2)
    assert [lr_factor(i, config) for i in range(11)] == pytest.approx(
        [1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.0])


def test_gradient_penalty_formula():
    w = torch.randn(2, 3, 4, 4)
    x_hat = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = (x_hat * w).sum(dim=(1, 2, 3)).view(2, 1)  # d out / d x_hat = w
    expected = ((w.flatten(1).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(gradient_penalty(out, x_hat), expected)


def smooth_images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 2 - 1, size=32, mode="bilinear")


def test_updates_lower_reconstruction_loss_for_two_datasets():
    torch.manual_seed(0)
    config = tiny(g_lr=0.001, d_lr=0.001, num_iters=100, selected_attrs_2=["Happy", "Sad"], attr_path_2="x.txt")
    trainer = StarGanTrainer(config)
    batch = {"dataset1": (smooth_images(2, 1), torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
             "dataset2": (smooth_images(2, 2), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))}
    rec = []
    for iteration in range(1, 13):
        losses = trainer.train_step(batch, iteration)
        rec.append(losses["loss_G_rec"].item() + losses["loss_G_rec_2"].item())
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert sum(rec[-3:]) / 3 < 0.7 * rec[0], rec


def test_generator_steps_only_every_n_critic_iterations():
    trainer = StarGanTrainer(tiny(n_critic=2))
    batch = {"dataset1": (smooth_images(2, 1), torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))}
    assert "loss_G_rec" not in trainer.train_step(batch, 1)
    assert "loss_G_rec" in trainer.train_step(batch, 2)


# ------------------------------------------------------------------------------ checkpoints, CLI

def test_checkpoint_round_trip_and_config_conflict(tmp_path):
    config = tiny()
    gen = Generator(config.g_conv_dim, config.c_dim, config.g_repeat_num)
    save_checkpoint(tmp_path / "stargan_00000005.pt", "stargan", {"G": gen}, config, 5)
    ckpt = read_checkpoint(tmp_path / "stargan_00000005.pt")
    assert (ckpt.family, ckpt.iteration, ckpt.config, ckpt.source_format) == ("stargan", 5, config, "munit-rt")
    x, c = smooth_images(2, 3), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    with torch.no_grad():
        torch.testing.assert_close(load_generators(ckpt)["G"](x, c), gen.eval()(x, c), atol=0, rtol=0)
    with pytest.raises(CheckpointError, match="disagrees"):
        read_checkpoint(tmp_path / "stargan_00000005.pt", config=tiny(selected_attrs=["Bangs", "Male", "Young"]))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="multiple of 2\\*\\*d_repeat_num"):
        tiny(image_size=36)
    with pytest.raises(ConfigError, match="unknown key 'c_dim'"):
        tiny(c_dim=5)  # c_dim follows from selected_attrs


def test_cli_train_two_iterations_then_info(tmp_path):
    import yaml

    from munit_rt.cli import cli

    attr_path = write_dataset(tmp_path / "data")
    data = {**dataclasses.asdict(tiny()), "family": "stargan", "attr_path": str(attr_path),
            "selected_attrs": list(ATTRS), "selected_attrs_2": []}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--config", str(tmp_path / "cfg.yaml"), "--data", str(tmp_path / "data"),
                                      "--out", str(run), "--max-iter", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "dis_00000002.pt", "optimizer.pt", "stargan_00000002.pt"]
    assert len((run / "logs" / "stats.jsonl").read_text().splitlines()) == 2
    assert json.loads((run / "logs" / "stats.jsonl").read_text().splitlines()[-1])["iteration"] == 2
    info = CliRunner().invoke(cli, ["info", str(run / "checkpoints" / "stargan_00000002.pt")])
    assert info.exit_code == 0 and "family         stargan" in info.output, info.output
    assert "c_dim=3 selected_attrs=Bangs,Smiling,Male" in info.output


def test_cli_info_on_upstream_file(tmp_path):
    from munit_rt.cli import cli

    torch.save(random_state(upstream_keys_dim8_c3_rep2(False)), tmp_path / "200000-G.ckpt")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "200000-G.ckpt")])
    assert result.exit_code == 0, result.output
    assert "iteration      200000" in result.output and "source format  official" in result.output
    assert "inferred from tensor shapes: conv_dim=8 c_dim=3 repeat_num=2" in result.output
    params = sum(math.prod(shape) for key, shape in upstream_keys_dim8_c3_rep2().items()
                 if "running" not in key and "num_batches" not in key)
    assert re.search(rf"^  total +{params}$", result.output, re.MULTILINE), result.output


def test_two_dataset_resume_reproduces_uninterrupted_run(tmp_path):
    import yaml

    from munit_rt.training.engine.driver import train

    first, second = write_dataset(tmp_path / "data"), write_dataset(tmp_path / "data", ("Happy", "Sad"), seed=1)
    data = {**dataclasses.asdict(tiny(num_iters=4, num_iters_decay=2)), "family": "stargan",
            "image_dir": str(tmp_path / "data"), "attr_path": str(first), "selected_attrs": list(ATTRS),
            "attr_path_2": str(second), "selected_attrs_2": ["Happy", "Sad"]}
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(data))
    train(config, None, tmp_path / "straight", device="cpu")
    train(config, None, tmp_path / "split", max_iter=2, device="cpu")  # stops early; same LR schedule
    train(config, None, tmp_path / "split", device="cpu", resume=True)

    def stats(run):
        return [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]

    straight, split = stats(tmp_path / "straight"), stats(tmp_path / "split")
    assert [s["lr"] for s in straight] == pytest.approx([1e-4, 1e-4, 1e-4, 0.5e-4])
    assert {"loss_G_rec", "loss_G_rec_2", "loss_D_cls_2"} <= set(straight[0])
    for a, b in zip(straight, split, strict=True):
        assert {k: v for k, v in a.items() if k.startswith("loss")} == pytest.approx(
            {k: v for k, v in b.items() if k.startswith("loss")}, abs=1e-6)
    assert sorted(p.name for p in (tmp_path / "split" / "images").iterdir()) == [
        "stargan_dataset1_00000002.png", "stargan_dataset1_00000004.png",
        "stargan_dataset2_00000002.png", "stargan_dataset2_00000004.png"]
