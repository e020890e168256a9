"""The runtime, for every registered family (tests/contract/conftest.py): the bundle opens, `info` names the
family, `translate` writes the family plan's outputs, resumes, refuses a changed run unless --overwrite, needs no
torch, and the PyTorch reference backend agrees with ONNX Runtime on the family's translate job."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import counts_line, files_of, translate
from contract import checks
from contract.checks import IMAGES
from fakes.imports import run_blocked


def summary_counts(translated: int, done: int, failed: int = 0) -> str:
    return f"{IMAGES} inputs: {translated} translated, {done} already done, {failed} failed"


@pytest.fixture(scope="module")
def translated(exported, inputs) -> Path:
    """`munit-rt translate -m BUNDLE INPUTS -o OUT` with the defaults, in-process, once per family."""
    out = exported.root / "translated"
    if not out.is_dir():
        code, output = translate(exported.bundle, inputs, "-o", out)
        assert code == 0, output
        assert counts_line(output).startswith(summary_counts(IMAGES, 0)), output
    return out


def copy_of(out: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(out, tmp_path / out.name))


def test_bundle_opens_as_the_family(exported):
    checks.check_bundle_opens(exported)


def test_info_names_the_family(exported):
    checks.check_info(exported)


def test_translate_writes_the_outputs_of_the_family_plan(exported, inputs, translated):
    from PIL import Image

    relpaths = sorted(p.name for p in inputs.iterdir())
    plan = checks.plan_for(exported, inputs)
    written = files_of(translated)
    assert set(written) == checks.expected_outputs(plan, relpaths)
    multiple = exported.manifest["spatial_multiple"]
    for rel in written:
        with Image.open(translated / rel) as image:
            assert image.format == "PNG" and image.width % multiple == 0 and image.height % multiple == 0, rel


def test_a_second_run_resumes(exported, inputs, translated, tmp_path):
    out = copy_of(translated, tmp_path)
    before = files_of(out)
    code, output = translate(exported.bundle, inputs, "-o", out)
    assert code == 0, output
    assert counts_line(output).startswith(summary_counts(0, IMAGES)), output
    assert files_of(out) == before


def test_a_run_with_other_pixels_is_refused_unless_overwrite(exported, inputs, translated, tmp_path):
    """Options that change pixels are recorded: --precision for every family, --seed where the family reads it."""
    out = copy_of(translated, tmp_path)
    before = files_of(out)
    changes = [("--precision", "fp16")] + ([("--seed", "1")] if "seed" in exported.runtime.options else [])
    for flag, value in changes:
        code, output = translate(exported.bundle, inputs, "-o", out, flag, value)
        assert code == 2, output
        assert "holds a run with other settings" in output and "--overwrite" in output, output
        assert files_of(out) == before
    code, output = translate(exported.bundle, inputs, "-o", out, "--precision", "fp16", "--overwrite")
    assert code == 0, output
    assert counts_line(output).startswith(summary_counts(IMAGES, 0)), output
    assert set(files_of(out)) == set(before)
    code, output = translate(exported.bundle, inputs, "-o", out, "--precision", "fp16")
    assert code == 0 and counts_line(output).startswith(summary_counts(0, IMAGES)), output


def test_info_and_translate_run_with_torch_blocked(exported, inputs, translated, tmp_path):
    """In a fresh interpreter where `import torch` fails: `info` and `translate` exit 0, write the same files as the
    in-process run, and load nothing of torch, munit_rt.training or munit_rt.export."""
    out = tmp_path / "out"
    script = (
        "import json\n"
        "from munit_rt.cli import cli\n"
        "codes = []\n"
        f"for args in (['info', {str(exported.bundle)!r}], ['translate', '-m', {str(exported.bundle)!r}, "
        f"{str(inputs)!r}, '-o', {str(out)!r}]):\n"
        "    try:\n"
        "        cli(args, prog_name='munit-rt')\n"
        "        codes.append(0)\n"
        "    except SystemExit as exc:\n"
        "        codes.append(exc.code)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'\n"
        "               or m.startswith(('munit_rt.training', 'munit_rt.export')))\n"
        "print('RESULT ' + json.dumps({'codes': codes, 'heavy': heavy}))\n"
    )
    result = run_blocked(script, "torch")
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    assert json.loads(lines[-1][len("RESULT "):]) == {"codes": [0, 0], "heavy": []}, result.stderr
    assert f"family      {exported.name}" in result.stdout
    assert files_of(out) == files_of(translated)


def test_torch_backend_agrees_with_onnxruntime_on_the_family_job(exported, inputs):
    checks.check_backends_agree(exported, inputs)
