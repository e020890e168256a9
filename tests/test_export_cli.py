"""`munit-rt export` from the command line: an official gen_*.pt + YAML round trip, and every bad input failing
with one `Error:` line, exit code 2, no traceback and nothing left behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch", reason="export needs torch")
ort = pytest.importorskip("onnxruntime", reason="parity checks run the graphs in ONNX Runtime")
pytest.importorskip("onnx", reason="export needs onnx")

from conftest import make_generators, tiny_config_dict, write_yaml  # noqa: E402

from munit_rt.cli import cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run_export(*args: str):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


@pytest.fixture(scope="module")
def official_export(tmp_path_factory):
    """An official-format checkpoint (no config inside) exported with its YAML through the CLI."""
    from munit_rt.training.config import config_from_dict

    root = tmp_path_factory.mktemp("official")
    config = config_from_dict(tiny_config_dict(), source="tiny")
    gens = make_generators(config, seed=2)
    ckpt = root / "gen_00001000.pt"
    torch.save({"a": gens["a"].state_dict(), "b": gens["b"].state_dict()}, ckpt)
    yaml_path = write_yaml(root / "tiny.yaml", tiny_config_dict())
    result = run_export(ckpt, "--config", yaml_path, "-o", root / "out.bundle", "--precision", "fp32")
    return {"result": result, "bundle": root / "out.bundle", "ckpt": ckpt, "yaml": yaml_path}


def test_official_checkpoint_with_yaml_exports_and_matches_pytorch(official_export):
    from munit_rt.training.checkpoint import read_checkpoint
    from munit_rt.training.registry import load_generators

    result, bundle = official_export["result"], official_export["bundle"]
    assert result.exit_code == 0, result.output
    assert "decoder_b" in result.output and "max abs" in result.output  # closing summary table
    manifest = json.loads((bundle / "manifest.json").read_text())
    source = manifest["source_checkpoint"]
    assert (source["format"], source["iteration"], source["name"]) == ("official", 1000, "gen_00001000.pt")
    assert manifest["precisions"] == ["fp32"] and not (bundle / "fp16").exists()
    gens = load_generators(read_checkpoint(official_export["ckpt"], config=official_export["yaml"]))
    rng = np.random.default_rng(3)
    image = rng.uniform(-1, 1, (2, 3, 48, 40)).astype(np.float32)
    style = rng.standard_normal((2, 4)).astype(np.float32)

    def run(graph, **feeds):
        sess = ort.InferenceSession(str(bundle / "fp32" / f"{graph}.onnx"), providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)[0]

    with torch.no_grad():
        for d, gen in gens.items():
            x = torch.from_numpy(image)
            content = gen.enc_content(x)
            np.testing.assert_allclose(run(f"content_encoder_{d}", image=image), content.numpy(), atol=1e-4)
            np.testing.assert_allclose(run(f"style_encoder_{d}", image=image), gen.enc_style(x).flatten(1).numpy(),
                                       atol=1e-4)
            adain = gen.mlp(torch.from_numpy(style))
            np.testing.assert_allclose(run(f"style_mlp_{d}", style=style), adain.numpy(), atol=1e-4)
            np.testing.assert_allclose(run(f"decoder_{d}", content=content.numpy(), adain_params=adain.numpy()),
                                       gen.dec(content, adain).numpy(), atol=1e-4)


# -- bad inputs -------------------------------------------------------------------------------------
def assert_clean_failure(result, out_parent: Path, expected_entries: set[str], message: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and message in result.output, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1
    assert {p.name for p in out_parent.iterdir()} == expected_entries  # no bundle, no staging directory


def test_text_file_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "gen_00000001.pt"
    bad.write_text("not a checkpoint\n")
    result = run_export(bad)
    assert_clean_failure(result, tmp_path, {bad.name}, "not a PyTorch checkpoint")


def test_truncated_checkpoint(tiny_checkpoint, tmp_path):
    truncated = tmp_path / "half.pt"
    data = tiny_checkpoint.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    result = run_export(truncated)
    assert_clean_failure(result, tmp_path, {tiny_checkpoint.name, truncated.name}, "truncated or corrupt")


@pytest.mark.parametrize("payload, message", [
    ({"model.1.weight": torch.zeros(2, 2)}, "not a MUNIT generator checkpoint"),
    ({"a": {}, "b": {}, "munit_rt": {"format": 1, "family": "cyclegan", "config": {}}}, "family 'cyclegan'"),
])
def test_checkpoint_of_another_family(tmp_path, payload, message):
    ckpt = tmp_path / "gen_00000001.pt"
    torch.save(payload, ckpt)
    assert_clean_failure(run_export(ckpt), tmp_path, {ckpt.name}, message)


def test_config_that_does_not_match_the_weights(official_checkpoint):
    ckpt, _ = official_checkpoint
    wrong = write_yaml(ckpt.parent / "wide.yaml", tiny_config_dict(gen={"dim": 16}))
    before = {p.name for p in ckpt.parent.iterdir()}
    result = run_export(ckpt, "--config", wrong)
    assert_clean_failure(result, ckpt.parent, before, "enc_style.model.0.conv.weight")


def test_official_checkpoint_without_config(official_checkpoint):
    ckpt, _ = official_checkpoint
    before = {p.name for p in ckpt.parent.iterdir()}
    assert_clean_failure(run_export(ckpt), ckpt.parent, before, "--config")


def test_existing_output_needs_force(tiny_checkpoint, tmp_path):
    out = tmp_path / "model.bundle"
    out.mkdir()
    (out / "keep.txt").write_text("previous bundle")
    result = run_export(tiny_checkpoint, "-o", out)
    assert_clean_failure(result, tmp_path, {tiny_checkpoint.name, "model.bundle"}, "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_unwritable_output_directory(tiny_checkpoint, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        parent = locked
        if os.access(locked, os.W_OK):  # root ignores permissions; sysfs refuses even root
            parent = Path("/sys")
            if not parent.is_dir():
                pytest.skip("running as root without /sys: no unwritable directory to test with")
        before = {p.name for p in parent.iterdir()}
        result = run_export(tiny_checkpoint, "-o", parent / "model.bundle")
        assert_clean_failure(result, parent, before, "cannot write into")
    finally:
        locked.chmod(0o755)


def test_failed_parity_check_leaves_nothing_behind(tiny_checkpoint, tmp_path):
    out_parent = tmp_path / "out"
    out_parent.mkdir()
    result = run_export(tiny_checkpoint, "-o", out_parent / "model.bundle", "--atol", "1e-12")
    assert_clean_failure(result, out_parent, set(), "over --atol")


# -- the command itself -----------------------------------------------------------------------------
def test_options_are_passed_to_export_bundle(monkeypatch, tiny_checkpoint, tmp_path):
    from munit_rt import export

    calls = {}

    def fake_export_bundle(ckpt_path, out_dir, **kwargs):
        calls.update(kwargs, ckpt_path=ckpt_path, out_dir=out_dir)
        out_dir.mkdir()
        (out_dir / "manifest.json").write_text(json.dumps({"graphs": {}}))
        return out_dir

    monkeypatch.setattr(export, "export_bundle", fake_export_bundle)
    out = tmp_path / "x.bundle"
    result = run_export(tiny_checkpoint, "-o", out, "--precision", "fp16", "--opset", "17", "--atol", "0.001",
                        "--min-psnr", "35", "--force")
    assert result.exit_code == 0, result.output
    assert (calls["ckpt_path"], calls["out_dir"]) == (tiny_checkpoint, out)
    assert (calls["precision"], calls["opset"], calls["atol"], calls["min_psnr"], calls["force"]) == \
        ("fp16", 17, 0.001, 35.0, True)
    assert calls["config"] is None and calls["trust_checkpoint"] is False


def test_help_and_no_torch_at_import():
    result = CliRunner().invoke(cli, ["export", "--help"])
    assert result.exit_code == 0 and "--precision" in result.output and "--min-psnr" in result.output
    code = "import sys, munit_rt.cli.export; print(sorted({'torch', 'onnx', 'munit_rt.export'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
