"""CycleGAN: upstream weight layout, architecture, size rules, training, checkpoints, CLI (tiny, CPU)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from conftest import write_images  # noqa: E402
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from munit_rt.training.checkpoint import read_checkpoint, save_checkpoint
from munit_rt.training.config import config_from_dict, load_config
from munit_rt.training.engine.driver import train
from munit_rt.training.errors import CheckpointError, ConfigError
from munit_rt.training.families.cyclegan.config import CycleGanConfig
from munit_rt.training.families.cyclegan.model import ResnetGenerator, round_to_multiple
from munit_rt.training.families.cyclegan.trainer import CycleGanTrainer, ImagePool
from munit_rt.training.networks import NLayerDiscriminator, linear_decay_rule
from munit_rt.training.registry import get_family, load_generators

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "training" / "configs" / "cyclegan_tiny.yaml"


def tiny(**overrides) -> CycleGanConfig:
    return dataclasses.replace(load_config(TINY_YAML), **overrides)


def upstream_keys_ngf8_6blocks() -> dict[str, tuple]:
    """junyanz ResnetGenerator(3, 3, ngf=8, norm=instance, n_blocks=6), written out from its layer list:
    0 pad, 1 conv7, 2 IN, 3 ReLU | 4-6, 7-9 down | 10-15 blocks | 16-18, 19-21 up | 22 pad, 23 conv7, 24 tanh.
    InstanceNorm has no affine and no running stats, so it contributes no keys."""
    keys = {"model.1.weight": (8, 3, 7, 7), "model.1.bias": (8,),
            "model.4.weight": (16, 8, 3, 3), "model.4.bias": (16,),
            "model.7.weight": (32, 16, 3, 3), "model.7.bias": (32,)}
    for block in range(10, 16):  # conv_block: 0 pad, 1 conv, 2 IN, 3 ReLU, 4 pad, 5 conv, 6 IN
        for conv in (1, 5):
            keys[f"model.{block}.conv_block.{conv}.weight"] = (32, 32, 3, 3)
            keys[f"model.{block}.conv_block.{conv}.bias"] = (32,)
    keys.update({"model.16.weight": (32, 16, 3, 3), "model.16.bias": (16,),  # ConvTranspose2d: [in, out, k, k]
                 "model.19.weight": (16, 8, 3, 3), "model.19.bias": (8,),
                 "model.23.weight": (3, 8, 7, 7), "model.23.bias": (3,)})
    return keys


def random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.1 for k, s in shapes.items()}


def reference_forward(state: dict, x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """The upstream generator spelled out with functional ops on the state dict."""
    def conv(h, i, **kw):
        return F.conv2d(h, state[f"{i}.weight"], state[f"{i}.bias"], **kw)

    def norm_relu(h):
        return F.relu(F.instance_norm(h, eps=1e-5))

    h = norm_relu(conv(F.pad(x, (3, 3, 3, 3), mode="reflect"), "model.1"))
    h = norm_relu(conv(h, "model.4", stride=2, padding=1))
    h = norm_relu(conv(h, "model.7", stride=2, padding=1))
    for i in range(10, 10 + n_blocks):
        r = norm_relu(conv(F.pad(h, (1, 1, 1, 1), mode="reflect"), f"model.{i}.conv_block.1"))
        r = F.instance_norm(conv(F.pad(r, (1, 1, 1, 1), mode="reflect"), f"model.{i}.conv_block.5"), eps=1e-5)
        h = h + r
    for i in (10 + n_blocks, 13 + n_blocks):
        h = norm_relu(F.conv_transpose2d(h, state[f"model.{i}.weight"], state[f"model.{i}.bias"], stride=2,
                                         padding=1, output_padding=1))
    return torch.tanh(conv(F.pad(h, (3, 3, 3, 3), mode="reflect"), f"model.{17 + n_blocks}"))


# ----------------------------------------------------------------------------------- upstream layout

def test_generator_keys_equal_upstream_and_load_strictly():
    expected = upstream_keys_ngf8_6blocks()
    gen = ResnetGenerator(3, 3, ngf=8, n_blocks=6)
    assert {k: tuple(v.shape) for k, v in gen.state_dict().items()} == expected
    assert list(gen.state_dict()) == list(expected)  # upstream's order too
    state = random_state(expected)
    gen.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(gen(x), reference_forward(state, x, 6), atol=1e-5, rtol=0)


def test_nine_blocks_put_upsampling_at_19_22_and_final_conv_at_26():
    keys = [k for k in ResnetGenerator(3, 3, ngf=8, n_blocks=9).state_dict() if "conv_block" not in k]
    assert keys == ["model.1.weight", "model.1.bias", "model.4.weight", "model.4.bias", "model.7.weight",
                    "model.7.bias", "model.19.weight", "model.19.bias", "model.22.weight", "model.22.bias",
                    "model.26.weight", "model.26.bias"]
    # the full-size generator has upstream's published parameter count
    assert sum(p.numel() for p in ResnetGenerator().parameters()) == 11_378_179


def test_dropout_shifts_the_second_conv_to_index_6():
    keys = ResnetGenerator(3, 3, ngf=8, n_blocks=1, use_dropout=True).state_dict()
    assert "model.10.conv_block.6.weight" in keys and "model.10.conv_block.5.weight" not in keys


def test_old_instance_norm_buffers_are_dropped(tmp_path):
    state = random_state(upstream_keys_ngf8_6blocks())
    norms = ["model.2", "model.5", "model.8", "model.17", "model.20"]
    norms += [f"model.{b}.conv_block.{n}" for b in range(10, 16) for n in (2, 6)]
    for name, channels in zip(norms, [8, 16, 32, 16, 8] + [32] * 12):
        state.update({f"{name}.running_mean": torch.zeros(channels), f"{name}.running_var": torch.ones(channels),
                      f"{name}.num_batches_tracked": torch.tensor(0)})
    torch.save(state, tmp_path / "latest_net_G_A.pth")
    config = tiny(n_blocks=6)
    gens = load_generators(read_checkpoint(tmp_path / "latest_net_G_A.pth", config=config))
    torch.testing.assert_close(gens["G_A"].state_dict()["model.23.weight"], state["model.23.weight"])
    # anything else unexpected still fails, by name
    state["model.99.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad_net_G_A.pth")
    with pytest.raises(CheckpointError, match="model.99.weight"):
        load_generators(read_checkpoint(tmp_path / "bad_net_G_A.pth", config=config))


def test_upstream_pair_single_file_and_defaults(tmp_path):
    torch.save(random_state(upstream_keys_ngf8_6blocks(), 1), tmp_path / "latest_net_G_A.pth")
    torch.save(random_state(upstream_keys_ngf8_6blocks(), 2), tmp_path / "latest_net_G_B.pth")
    pair = read_checkpoint([tmp_path / "latest_net_G_A.pth", tmp_path / "latest_net_G_B.pth"],
                               config=tiny(n_blocks=6))
    assert pair.family == "cyclegan" and pair.source_format == "official" and set(pair.state_dicts) == {"G_A", "G_B"}
    assert set(load_generators(pair)) == {"G_A", "G_B"}
    single = read_checkpoint(tmp_path / "latest_net_G_B.pth")
    assert list(single.state_dicts) == ["G_B"] and single.config == CycleGanConfig()  # upstream defaults
    with pytest.raises(CheckpointError, match="upstream defaults do not fit"):  # 6 blocks vs. the default 9
        load_generators(single)
    with pytest.raises(CheckpointError, match="both files hold G_A"):
        read_checkpoint([tmp_path / "latest_net_G_A.pth", tmp_path / "latest_net_G_A.pth"])


# ------------------------------------------------------------------------------ sizes, discriminator

@pytest.mark.parametrize("size, expected", [(10, 8), (14, 16), (18, 16), (29, 28), (30, 32), (31, 32),
                                            (256, 256), (286, 288)])
def test_round_to_multiple_matches_upstream_make_power_2(size, expected):
    assert round_to_multiple(size) == expected == int(round(size / 4) * 4)


def test_round_to_multiple_refuses_zero():
    with pytest.raises(ValueError):
        round_to_multiple(1)


def test_output_size_keeps_multiples_of_4_and_rounds_others_up():
    gen = ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()
    with torch.no_grad():
        for h, w in ((32, 32), (36, 44), (28, 40)):
            assert gen(torch.zeros(1, 3, h, w)).shape[-2:] == (h, w)
        # other sizes come out at the next multiple of 4, hence round_to_multiple before the generator
        for h, w in ((29, 30), (31, 33)):
            assert gen(torch.zeros(1, 3, h, w)).shape[-2:] == (4 * math.ceil(h / 4), 4 * math.ceil(w / 4))
            assert gen(torch.zeros(1, 3, round_to_multiple(h), round_to_multiple(w))).shape[-2:] == (
                round_to_multiple(h), round_to_multiple(w))


def test_discriminator_is_a_70x70_patchgan():
    keys = {k: tuple(v.shape) for k, v in NLayerDiscriminator(3, ndf=8, n_layers=3).state_dict().items()}
    assert keys == {"model.0.weight": (8, 3, 4, 4), "model.0.bias": (8,), "model.2.weight": (16, 8, 4, 4),
                    "model.2.bias": (16,), "model.5.weight": (32, 16, 4, 4), "model.5.bias": (32,),
                    "model.8.weight": (64, 32, 4, 4), "model.8.bias": (64,), "model.11.weight": (1, 64, 4, 4),
                    "model.11.bias": (1,)}
    dis = NLayerDiscriminator(3, ndf=4, n_layers=3, norm="none")  # no norm: gradients stay local
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    out = dis(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (70, 70)


# ------------------------------------------------------------------------------------------- training

def test_image_pool_keeps_up_to_pool_size_fakes():
    pool = ImagePool(2, seed=0)
    first = torch.full((2, 1, 1, 1), 1.0)
    assert torch.equal(pool.query(first), first) and len(pool.images) == 2
    returned = torch.cat([pool.query(torch.full((1, 1, 1, 1), float(v))) for v in range(10, 30)])
    assert set(returned.flatten().tolist()) <= {1.0} | set(map(float, range(10, 30)))
    assert 1.0 in returned.flatten().tolist() and len(pool.images) == 2  # old fakes do come back
    assert torch.equal(ImagePool(0, seed=0).query(first), first)


def test_linear_decay_rule_as_upstream():
    rule = linear_decay_rule(n_epochs=2, n_epochs_decay=3)
    assert [rule(e) for e in range(5)] == pytest.approx([1, 1, 0.75, 0.5, 0.25])


def smooth_images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 2 - 1, size=32, mode="bilinear")


def test_updates_lower_cycle_loss_and_step_the_lr_per_epoch():
    torch.manual_seed(0)
    trainer = CycleGanTrainer(tiny(lr=0.001, n_epochs=1, n_epochs_decay=3), iters_per_epoch=10)
    batch = {"AB": (smooth_images(1, 1), smooth_images(1, 2))}
    cycle = []
    for iteration in range(1, 17):
        losses = trainer.train_step(batch, iteration)
        cycle.append((losses["loss_cycle_A"] + losses["loss_cycle_B"]).item())
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert sum(cycle[-3:]) / 3 < 0.75 * cycle[0], cycle
    assert trainer.lr() == pytest.approx(0.001 * 0.75)  # one epoch done: the first decay epoch


# ------------------------------------------------------------------------------ checkpoints, CLI

def test_checkpoint_round_trip_and_config_conflict(tmp_path):
    config = tiny()
    gens = {key: get_family("cyclegan").build_generator(config, key) for key in ("G_A", "G_B")}
    save_checkpoint(tmp_path / "cyclegan_00000007.pt", "cyclegan", gens, config, 7)
    ckpt = read_checkpoint(tmp_path / "cyclegan_00000007.pt")
    assert (ckpt.family, ckpt.iteration, ckpt.config, ckpt.source_format) == ("cyclegan", 7, config, "munit-rt")
    loaded = load_generators(ckpt)
    x = smooth_images(1, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded["G_B"](x), gens["G_B"].eval()(x), atol=0, rtol=0)
    with pytest.raises(CheckpointError, match="disagrees"):
        read_checkpoint(tmp_path / "cyclegan_00000007.pt", config=tiny(ngf=16))


def test_config_rejects_unknown_keys_and_bad_sizes():
    with pytest.raises(ConfigError, match="unknown key 'ngf_typo'"):
        config_from_dict({"family": "cyclegan", "ngf_typo": 8})
    with pytest.raises(ConfigError, match="multiple of 4"):
        config_from_dict({"family": "cyclegan", "load_size": 40, "crop_size": 30})


@pytest.fixture
def data_dir(tmp_path) -> Path:
    write_images(tmp_path / "data" / "trainA", 2, seed=1)
    write_images(tmp_path / "data" / "trainB", 3, seed=2)
    return tmp_path / "data"


def stats(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]


def test_resume_reproduces_uninterrupted_run(tmp_path, data_dir):
    # 3 iterations per epoch: the resume point (2) is mid-epoch and the LR decays after iteration 3
    config = tmp_path / "cfg.yaml"
    config.write_text(TINY_YAML.read_text().replace("n_epochs_decay: 1", "n_epochs_decay: 2"))
    train(config, data_dir, tmp_path / "straight", max_iter=4, device="cpu")
    train(config, data_dir, tmp_path / "split", max_iter=2, device="cpu")
    train(config, data_dir, tmp_path / "split", max_iter=4, device="cpu", resume=True)
    straight, split = stats(tmp_path / "straight"), stats(tmp_path / "split")
    assert [s["lr"] for s in straight] == pytest.approx([2e-4, 2e-4, 2e-4, 2e-4 * 2 / 3])
    for a, b in zip(straight, split, strict=True):
        assert {k: v for k, v in a.items() if k.startswith("loss")} == pytest.approx(
            {k: v for k, v in b.items() if k.startswith("loss")}, abs=1e-6)


def test_cli_train_two_iterations_then_info(tmp_path, data_dir):
    from munit_rt.cli import cli

    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--config", str(TINY_YAML), "--data", str(data_dir), "--out", str(run),
                                      "--max-iter", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "cyclegan_00000002.pt", "dis_00000002.pt", "optimizer.pt"]
    assert "family: cyclegan" in (run / "config.yaml").read_text() and len(stats(run)) == 2
    info = CliRunner().invoke(cli, ["info", str(run / "checkpoints" / "cyclegan_00000002.pt")])
    assert info.exit_code == 0, info.output
    assert "family         cyclegan" in info.output and "iteration      2" in info.output
    assert "ngf=8 n_blocks=2" in info.output


def test_cli_info_on_upstream_file(tmp_path):
    from munit_rt.cli import cli

    path = tmp_path / "latest_net_G_A.pth"
    torch.save(random_state(upstream_keys_ngf8_6blocks()), path)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "source format  official" in result.output and "G_A (A -> B)" in result.output
    assert "inferred from tensor shapes: input_nc=3 output_nc=3 ngf=8 n_blocks=6" in result.output
    assert "do NOT fit" in result.output
    total = sum(math.prod(s) for s in upstream_keys_ngf8_6blocks().values())
    assert f"total     {total}" in result.output
