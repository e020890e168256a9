"""pix2pix export of upstream junyanz files: `latest_net_G.pth` / `<epoch>_net_G.pth` (U-Net) told from CycleGAN's
files by their keys, exported without a config when the shapes fix the architecture and with one in upstream
option names otherwise, in both test modes.

Every exported graph is run in ONNX Runtime and compared with the independent re-statement of upstream's U-Net
in test_pix2pix_model (`reference_unet`, torch.nn.functional over the file's tensors, written from the published
architecture): eval true against BatchNorm's running statistics (upstream `eval()`), eval false against
training-mode BatchNorm applied to each image alone with dropout off. Widths are tiny (ngf 2); unet_128 runs at
128 x 128 and 128 x 256, unet_256 at 256 x 256 and 256 x 512.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_yaml  # noqa: E402

torch = pytest.importorskip("torch", reason="upstream files are written with torch (pip install 'munit-rt[train]')")
pytest.importorskip("onnx", reason="pip install 'munit-rt[export]'")
ort = pytest.importorskip("onnxruntime")

from munit_rt.cli import cli  # noqa: E402
from munit_rt.training.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from munit_rt.training.errors import CheckpointError  # noqa: E402
from munit_rt.training.families.pix2pix.graphs import parity_images  # noqa: E402
from munit_rt.training.registry import get_family  # noqa: E402
from test_pix2pix_model import level_prefix, reference_unet, upstream_state  # noqa: E402

NETG = {"unet_128": 7, "unet_256": 8}
NGF = 2


def run_export(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args), "--precision", "fp32"])


def exported(bundle: Path) -> tuple[dict, "ort.InferenceSession"]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return manifest, ort.InferenceSession(str(bundle / "fp32" / "generator.onnx"), providers=["CPUExecutionProvider"])


def inputs(num_downs: int, batch: int, seed: int, wide: bool = False) -> np.ndarray:
    """Images whose contrast and brightness differ per image: a batch's statistics are none of its images'."""
    m = 2**num_downs
    return parity_images(np.random.default_rng(seed), batch, 3, m, 2 * m if wide else m)


def assert_matches_reference(session, state: dict, num_downs: int, norm: str, eval_mode: bool) -> None:
    for batch, wide in ((1, False), (3, True)):
        x = inputs(num_downs, batch, seed=batch, wide=wide)
        got = session.run(["output"], {"image": x})[0]
        expected = reference_unet(state, torch.from_numpy(x), num_downs, norm, per_image=not eval_mode).numpy()
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4, (batch, wide, np.abs(got - expected).max())


def stale_instance_norm_buffers(state: dict, num_downs: int) -> dict:
    """What pre-0.4 upstream files hold besides the weights: running statistics of every InstanceNorm."""
    old = dict(state)
    for level in range(1, num_downs):
        p = f"{level_prefix(level)}.model"
        for index in ((4,) if level == num_downs - 1 else (2, 6)):
            channels = state[f"{p}.{3 if level == num_downs - 1 else 5}.weight"].shape[1]
            old[f"{p}.{index}.running_mean"] = torch.zeros(channels)
            old[f"{p}.{index}.running_var"] = torch.ones(channels)
            old[f"{p}.{index}.num_batches_tracked"] = torch.tensor(0)
    return old


# ------------------------------------------------------------------ upstream files, both test modes

@pytest.mark.parametrize("eval_mode", [False, True], ids=["eval_false", "eval_true"])
@pytest.mark.parametrize("dropout", [True, False], ids=["dropout", "no_dropout"])
@pytest.mark.parametrize("netG,norm", [("unet_128", "batch"), ("unet_128", "instance"), ("unet_256", "batch"),
                                       ("unet_256", "instance")])
def test_upstream_file_exports_and_matches_the_reference(tmp_path, netG, norm, dropout, eval_mode):  # noqa: N803
    """Upstream's defaults (dropout layers, eval false) need no config; anything else is a config in upstream
    option names, and must fit the weights."""
    num_downs = NETG[netG]
    state = upstream_state(num_downs, norm, seed=num_downs)
    ckpt = tmp_path / "200_net_G.pth"  # upstream's per-epoch name; latest_net_G.pth elsewhere
    torch.save(state, ckpt)
    config = {"family": "pix2pix", "netG": netG, "ngf": NGF, "norm": norm, "no_dropout": not dropout,
              "eval": eval_mode}
    args = [] if dropout and not eval_mode else ["--config", write_yaml(tmp_path / "p2p.yaml", config)]
    result = run_export(ckpt, *args, "-o", tmp_path / "b")
    assert result.exit_code == 0, result.output
    manifest, session = exported(tmp_path / "b")
    assert manifest["source_checkpoint"]["config_source"] == ("given" if args else "inferred")
    assert (manifest["config"]["netG"], manifest["config"]["ngf"], manifest["config"]["norm"]) == (netG, NGF, norm)
    assert manifest["config"]["eval"] is manifest["generator"]["eval"] is eval_mode
    assert manifest["config"]["no_dropout"] is (not dropout) and manifest["direction"] == "AtoB"
    assert manifest["spatial_multiple"] == manifest["preprocess"]["multiple"] == 2**num_downs
    assert_matches_reference(session, state, num_downs, norm, eval_mode)


def test_old_key_files_export(tmp_path):
    """Pre-0.4 files: stale InstanceNorm statistics (dropped, as upstream's __patch_instance_norm_state_dict), and
    BatchNorm without num_batches_tracked (filled, as PyTorch's loader does for files of <= 0.4.0)."""
    instance = upstream_state(7, "instance", seed=3)
    batch = {k: v for k, v in upstream_state(8, "batch", seed=4).items() if not k.endswith("num_batches_tracked")}
    (tmp_path / "instance").mkdir()
    (tmp_path / "batch").mkdir()
    torch.save(stale_instance_norm_buffers(instance, 7), tmp_path / "instance" / "latest_net_G.pth")
    torch.save(batch, tmp_path / "batch" / "latest_net_G.pth")
    eval_true = write_yaml(tmp_path / "eval.yaml", {"family": "pix2pix", "eval": True, "ngf": NGF})
    cases = (("instance", [], instance, 7, "instance", False), ("batch", [], batch, 8, "batch", False),
             ("batch", ["--config", eval_true], batch, 8, "batch", True))
    for folder, args, state, num_downs, norm, eval_mode in cases:
        bundle = tmp_path / f"{folder}_{eval_mode}.bundle"
        result = run_export(tmp_path / folder / "latest_net_G.pth", *args, "-o", bundle)
        assert result.exit_code == 0, result.output
        assert_matches_reference(exported(bundle)[1], state, num_downs, norm, eval_mode)


def test_a_config_that_does_not_fit_the_file_is_refused_by_key(tmp_path):
    torch.save(upstream_state(7, "batch"), tmp_path / "latest_net_G.pth")
    yaml_path = write_yaml(tmp_path / "eval.yaml", {"family": "pix2pix", "netG": "unet_128", "eval": True})
    result = run_export(tmp_path / "latest_net_G.pth", "--config", yaml_path)  # ngf 64, the file's is 2
    assert result.exit_code == 2 and "tensor 'model.model.0.weight' has shape [2, 3, 4, 4]" in result.output, \
        result.output
    assert not (tmp_path / "latest_net_G.bundle").exists()


def test_exported_per_image_statistics_ignore_batch_company(tmp_path):
    """eval false in ONNX Runtime: an image's output is the same alone, in a batch of 3, and among others."""
    state = upstream_state(7, "batch", seed=5)
    torch.save(state, tmp_path / "latest_net_G.pth")
    assert run_export(tmp_path / "latest_net_G.pth", "-o", tmp_path / "b").exit_code == 0
    session = exported(tmp_path / "b")[1]
    x = inputs(7, 3, seed=6)
    together = session.run(["output"], {"image": x})[0]
    for i in range(3):
        alone = session.run(["output"], {"image": x[i:i + 1]})[0]
        assert np.abs(together[i:i + 1] - alone).max() <= 1e-5
    others = np.concatenate([inputs(7, 2, seed=7), x[1:2]])
    assert np.abs(session.run(["output"], {"image": others})[0][2] - together[1]).max() <= 1e-5
    eval_true = reference_unet(state, torch.from_numpy(x), 7, "batch", per_image=False).numpy()
    assert np.abs(together - eval_true).max() > 1e-2  # the two test modes really differ on this file


# --------------------------------------------------------------------------------------- detection

def test_unet_files_are_pix2pix_and_resnet_files_stay_cyclegan(tmp_path):
    from munit_rt.training.families.cyclegan.model import ResnetGenerator

    torch.save(upstream_state(7, "batch"), tmp_path / "latest_net_G.pth")
    (tmp_path / "cyclegan").mkdir()
    torch.save(ResnetGenerator(3, 3, 4, "instance", False, 2).state_dict(), tmp_path / "cyclegan" / "latest_net_G.pth")
    unet = read_checkpoint(tmp_path / "latest_net_G.pth")
    assert (unet.family, list(unet.state_dicts), unet.meta["config_source"]) == ("pix2pix", ["G"], "inferred")
    resnet = read_checkpoint(tmp_path / "cyclegan" / "latest_net_G.pth", config=get_family("cyclegan").config_class(
        ngf=4, n_blocks=2))
    assert (resnet.family, list(resnet.state_dicts)) == ("cyclegan", ["G_A"])  # CycleGAN's test-mode file name


def test_discriminator_files_are_refused_naming_the_generator_file(tmp_path):
    from munit_rt.training.networks import NLayerDiscriminator

    torch.save(NLayerDiscriminator(6, 4, 3, "batch").state_dict(), tmp_path / "latest_net_D.pth")
    with pytest.raises(CheckpointError, match=r"latest_net_D.pth: .* or an upstream pix2pix discriminator .*; "
                                              r"pass the generator file \(latest_net_G.pth\)"):
        read_checkpoint(tmp_path / "latest_net_D.pth")
    torch.save(NLayerDiscriminator(3, 4, 3, "instance").state_dict(), tmp_path / "latest_net_D_A.pth")
    with pytest.raises(CheckpointError) as refused:  # 3 channels: a CycleGAN discriminator, only
        read_checkpoint(tmp_path / "latest_net_D_A.pth")
    assert "CycleGAN discriminator" in str(refused.value) and "pix2pix" not in str(refused.value)


def test_a_unet_of_no_upstream_depth_needs_its_config(tmp_path):
    torch.save(upstream_state(6, "batch"), tmp_path / "latest_net_G.pth")
    result = run_export(tmp_path / "latest_net_G.pth")
    assert result.exit_code == 2 and "a U-Net of 6 blocks, which is no upstream netG (unet_128: 7 blocks, " \
                                      "unet_256: 8 blocks)" in result.output, result.output
    assert not (tmp_path / "latest_net_G.bundle").exists()


def test_info_on_an_upstream_file_says_what_the_file_cannot(tmp_path):
    torch.save(upstream_state(8, "instance", input_nc=1), tmp_path / "latest_net_G.pth")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "latest_net_G.pth")])
    assert result.exit_code == 0, result.output
    assert "family         pix2pix" in result.output and "source format  official" in result.output
    assert "the architecture is inferred from the tensor shapes" in result.output
    assert "netG=unet_256 input_nc=1 output_nc=3 ngf=2 norm=instance" in result.output
    assert "direction (AtoB assumed) and eval (false assumed) are not in the file" in result.output


# ---------------------------------------------------------------------------- munit-rt checkpoints

def test_munit_rt_checkpoint_takes_the_test_mode_from_a_config_that_fits(tmp_path):
    """A config given for a munit-rt checkpoint may set the test mode, never what the weights fix (their shapes,
    and the direction they were trained in)."""
    family = get_family("pix2pix")
    config = family.config_from_dict({"netG": "unet_128", "ngf": NGF, "crop_size": 128, "load_size": 142},
                                     "test")
    torch.manual_seed(0)
    ckpt = tmp_path / "pix2pix_00000005.pt"
    save_checkpoint(ckpt, family, {"G": family.build_generator(config, "G")}, config, 5)
    stored = config.to_dict()
    assert run_export(ckpt, "-o", tmp_path / "stored").exit_code == 0
    assert exported(tmp_path / "stored")[0]["generator"]["eval"] is False
    result = run_export(ckpt, "--config", write_yaml(tmp_path / "eval.yaml", {**stored, "eval": True}),
                        "-o", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    manifest = exported(tmp_path / "eval")[0]
    assert manifest["generator"]["eval"] is True and manifest["source_checkpoint"]["config_source"] == "given"
    result = run_export(ckpt, "--config", write_yaml(tmp_path / "btoa.yaml", {**stored, "direction": "BtoA"}),
                        "-o", tmp_path / "btoa")
    assert result.exit_code == 2 and "disagrees with the config stored" in result.output
