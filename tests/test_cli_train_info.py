"""`munit-rt train` and `munit-rt info` from the command line: outputs, and one-line errors for bad input."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import tiny_config_dict, write_images, write_yaml  # noqa: E402
from munit_rt.cli import cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(tmp_path) -> Path:
    root = tmp_path / "data"
    write_images(root / "trainA", 3, seed=1)
    write_images(root / "trainB", 3, seed=2)
    return root


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, *needles: str):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def train_args(tmp_path, data_dir, config=None, out="run"):
    config = config or write_yaml(tmp_path / "cfg.yaml", tiny_config_dict())
    return ["train", "--config", config, "--data", data_dir, "--out", tmp_path / out, "--max-iter", "3"]


def test_train_writes_checkpoints_config_and_logs(tmp_path, data_dir):
    result = invoke(*train_args(tmp_path, data_dir), "--device", "cpu", "--seed", "5")
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "dis_00000003.pt", "gen_00000003.pt", "optimizer.pt"]
    assert "seed: 5" in (run / "config.yaml").read_text()
    assert len((run / "logs" / "stats.jsonl").read_text().splitlines()) == 3
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "logs").iterdir())
    # a second run into the same folder is refused; --resume continues it
    assert_one_line_error(invoke(*train_args(tmp_path, data_dir)), "already holds checkpoints", "--resume")
    result = invoke(*train_args(tmp_path, data_dir)[:-1], "4", "--resume")
    assert result.exit_code == 0 and (run / "checkpoints" / "gen_00000004.pt").is_file(), result.output


def _expected_counts(config) -> dict[str, int]:
    from munit_rt.training.families.munit.model import AdaINGen

    gen = AdaINGen(3, config.gen)
    return {name: sum(p.numel() for p in getattr(gen, name).parameters())
            for name in ("enc_style", "enc_content", "mlp", "dec")}


def test_info_munit_rt_checkpoint(tiny_checkpoint, tiny_config):
    result = invoke("info", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "family         munit" in out and "source format  munit-rt" in out and "iteration      10" in out
    assert "a: 3 channels, b: 3 channels" in out
    counts = _expected_counts(tiny_config)
    row_a = next(line for line in out.splitlines() if line.strip().startswith("domain a")).split()
    assert [int(v) for v in row_a[2:]] == [*counts.values(), sum(counts.values())]
    total = next(line for line in out.splitlines() if line.strip().startswith("total")).split()
    assert int(total[-1]) == 2 * sum(counts.values())


def test_info_official_checkpoint(official_checkpoint, tiny_config):
    path, yaml_path = official_checkpoint
    result = invoke("info", path)
    assert result.exit_code == 0, result.output
    assert "source format  official" in result.output and "iteration      1000" in result.output
    assert "not stored; pass --config" in result.output
    for value in ("dim=8", "style_dim=4", "n_res=1", "n_downsample=2", "mlp_dim=16", "input_dim_a=3"):
        assert value in result.output
    assert str(2 * sum(_expected_counts(tiny_config).values())) in result.output
    result = invoke("info", path, "--config", yaml_path)
    assert result.exit_code == 0 and f"from --config {yaml_path}" in result.output, result.output


def test_info_official_checkpoint_with_wrong_config(official_checkpoint, tmp_path):
    path, _ = official_checkpoint
    wrong = write_yaml(tmp_path / "wrong.yaml", tiny_config_dict(gen={"dim": 16}))
    assert_one_line_error(invoke("info", path, "--config", wrong), str(path), "enc_style.model.0.conv.weight")


def test_info_non_checkpoint_file(tmp_path):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("hello, not a checkpoint\n")
    assert_one_line_error(invoke("info", bogus), str(bogus), "not a readable PyTorch checkpoint")
    state_only = tmp_path / "dis_00000001.pt"
    torch.save({"a": {"cnns.0.0.conv.weight": torch.zeros(1)}, "b": {}}, state_only)
    assert_one_line_error(invoke("info", state_only), "not a MUNIT generator checkpoint")


def test_info_bundle_folder_delegates_to_bundle(tmp_path, monkeypatch):
    calls = []

    class FakeBundle:
        def __init__(self, path):
            calls.append(Path(path))

        def describe(self):
            return "bundle description"

    monkeypatch.setitem(sys.modules, "munit_rt.bundle", types.SimpleNamespace(Bundle=FakeBundle))
    (tmp_path / "model.bundle").mkdir()
    (tmp_path / "model.bundle" / "manifest.json").write_text("{}")
    result = invoke("info", tmp_path / "model.bundle")
    assert result.exit_code == 0 and result.output.strip() == "bundle description"
    assert calls == [tmp_path / "model.bundle"]
    assert_one_line_error(invoke("info", tmp_path), "manifest.json")


@pytest.mark.parametrize("case", ["missing_trainA", "empty_trainB", "unreadable_image", "unknown_key",
                                  "bad_value", "vgg_file_missing"])
def test_train_bad_input_is_one_line_and_writes_nothing(tmp_path, data_dir, case):
    config = tiny_config_dict()
    needles: tuple[str, ...]
    if case == "missing_trainA":
        (data_dir / "trainA").rename(data_dir / "A")
        needles = (str(data_dir / "trainA"), "no such folder")
    elif case == "empty_trainB":
        for path in (data_dir / "trainB").iterdir():
            path.unlink()
        needles = (str(data_dir / "trainB"), "no images")
    elif case == "unreadable_image":
        (data_dir / "trainA" / "x.png").write_text("this is text, not a PNG")
        needles = (str(data_dir / "trainA" / "x.png"), "cannot read image")
    elif case == "unknown_key":
        config["recon_x_weight"] = 10
        needles = ("recon_x_weight", "unknown key")
    elif case == "bad_value":
        config["gen"]["activ"] = "foo"
        needles = ("gen.activ", "foo")
    else:
        config.update(vgg_w=1.0, vgg_model_path=str(tmp_path / "vgg16.pth"))
        needles = ("vgg_model_path", "vgg16.pth")
    config_path = write_yaml(tmp_path / "cfg.yaml", config)
    assert_one_line_error(invoke(*train_args(tmp_path, data_dir, config_path)), *needles)
    assert not (tmp_path / "run").exists()


def test_resume_without_snapshot_is_an_error(tmp_path, data_dir):
    assert_one_line_error(invoke(*train_args(tmp_path, data_dir), "--resume"), "no gen_XXXXXXXX.pt snapshot")
    assert not (tmp_path / "run").exists()


def test_help_works_without_torch():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['munit_rt.training'] = None\n"
            "from munit_rt.cli import cli\n"
            "for args in (['--help'], ['train', '--help'], ['info', '--help']):\n"
            "    try:\n        cli(args, prog_name='munit-rt')\n"
            "    except SystemExit as exc:\n        assert exc.code == 0, (args, exc.code)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "--resume" in result.stdout and "manifest.json" in result.stdout
