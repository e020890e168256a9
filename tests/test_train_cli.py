"""Runs a user can trust (issue 16), the torch-side commands: `train --data` covers StarGAN's attribute files
from any working folder, `--max-iter` past the end of a schedule is refused saying how to extend it, `train -o`,
Ctrl-C in train (a real process) saying what was saved and the command that goes on, `export` making missing
parent folders (and removing them on failure), and checkpoints carrying pickled code: refused with the
documented message against the installed torch, and loaded exactly once with --trust-checkpoint.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs munit-rt[train]")

from conftest import CLI, interrupt_mid_run, invoke, tiny_config_dict, write_images, write_yaml  # noqa: E402
from test_run_trust import one_line_error  # noqa: E402
from test_stargan import ATTRS, tiny, write_dataset  # noqa: E402

from munit_rt.cli.common import EXIT_OK, EXIT_USAGE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REFUSAL = ("refused, the file contains pickled objects that could run code when loaded; re-save it as plain "
           "tensors, or pass --trust-checkpoint if you trust its author")


@pytest.fixture
def munit_data(tmp_path) -> Path:
    for domain in ("trainA", "trainB"):
        write_images(tmp_path / "data" / domain, 4, size=(40, 36))
    return tmp_path / "data"


# -- 8. --data covers StarGAN's attribute files ----------------------------------------------------------------
@pytest.mark.parametrize("beside", ["data", "config"])
def test_stargan_data_with_a_relative_attribute_file_from_another_folder(tmp_path, monkeypatch, beside):
    import dataclasses

    import yaml

    data = tmp_path / "data"
    attrs = write_dataset(data)  # data/attrs0.txt, naming data/sub/*.png
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    if beside == "config":
        attrs = attrs.rename(config_dir / attrs.name)
    config = {**dataclasses.asdict(tiny()), "family": "stargan", "selected_attrs": list(ATTRS),
              "selected_attrs_2": [], "image_dir": None, "attr_path": attrs.name}
    (config_dir / "cfg.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, output = invoke("train", "--config", config_dir / "cfg.yaml", "--data", data, "-o", "run", "--max-iter", 1,
                          "--device", "cpu")
    assert code == EXIT_OK, output
    assert (elsewhere / "run" / "checkpoints" / "stargan_00000001.pt").is_file()


def test_stargan_attribute_file_found_nowhere_names_the_places_looked(tmp_path):
    import dataclasses

    import yaml

    data = tmp_path / "data"
    write_dataset(data)
    config = {**dataclasses.asdict(tiny()), "family": "stargan", "selected_attrs": list(ATTRS),
              "selected_attrs_2": [], "attr_path": "missing.txt"}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    code, output = invoke("train", "--config", tmp_path / "cfg.yaml", "--data", data, "-o", tmp_path / "run")
    line = one_line_error(output)
    assert code == EXIT_USAGE and "attr_path missing.txt: no such attribute file" in line and str(data) in line
    assert not (tmp_path / "run").exists()


# -- 8. --max-iter past the end of the schedule --------------------------------------------------------------
def test_max_iter_past_the_stargan_schedule_says_how_to_extend_it(tmp_path):
    import dataclasses

    import yaml

    attrs = write_dataset(tmp_path / "data")
    config = {**dataclasses.asdict(tiny()), "family": "stargan", "selected_attrs": list(ATTRS),
              "selected_attrs_2": [], "attr_path": str(attrs)}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    code, output = invoke("train", "--config", tmp_path / "cfg.yaml", "--data", tmp_path / "data", "-o",
                          tmp_path / "run", "--max-iter", 100)
    line = one_line_error(output)
    assert code == EXIT_USAGE and "--max-iter 100 is past the end of" in line
    assert "num_iters 10" in line and "raise num_iters in the config" in line
    assert not (tmp_path / "run").exists()


def test_max_iter_past_the_cyclegan_schedule_says_how_to_extend_it(tmp_path, munit_data):
    code, output = invoke("train", "--config", REPO / "training/configs/cyclegan_tiny.yaml", "--data", munit_data,
                          "-o", tmp_path / "run", "--max-iter", 1000)
    line = one_line_error(output)
    assert code == EXIT_USAGE and "--max-iter 1000 is past the end of" in line
    assert re.search(r"n_epochs 1 \+ n_epochs_decay 1 = 2 epochs of 4 iterations = 8 iterations", line), line
    assert "raise n_epochs (constant LR) or n_epochs_decay" in line


def test_munit_max_iter_is_the_schedule_itself(tmp_path):
    """MUNIT's step policy has no end: any --max-iter is the run's length (no schedule to pass)."""
    from munit_rt.training.config import config_from_dict
    from munit_rt.training.engine.driver import check_schedule
    from munit_rt.training.registry import get_family

    config = config_from_dict(tiny_config_dict(max_iter=10**9), source="test")
    check_schedule(get_family("munit"), config, None, 1, "--max-iter")  # no error
    assert get_family("munit").schedule(config, None, 1) is None


# -- 8. train -o, and Ctrl-C (a real process) -----------------------------------------------------------------
def test_train_takes_dash_o(tmp_path, munit_data):
    config = write_yaml(tmp_path / "cfg.yaml", tiny_config_dict())
    code, output = invoke("train", "--config", config, "--data", munit_data, "-o", tmp_path / "run", "--max-iter", 1,
                          "--device", "cpu")
    assert code == EXIT_OK, output
    assert (tmp_path / "run" / "checkpoints" / "gen_00000001.pt").is_file()


def test_ctrl_c_in_train_says_what_was_saved_and_the_printed_command_goes_on(tmp_path, munit_data):
    config = write_yaml(tmp_path / "cfg.yaml", tiny_config_dict())
    run_dir = tmp_path / "run"
    stats = run_dir / "logs" / "stats.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny tensors: one torch thread is fastest (see conftest)
    last = interrupt_mid_run(["train", "--config", config, "--data", munit_data, "-o", run_dir, "--max-iter", 8,
                              "--device", "cpu"], lambda: stats.is_file() and stats.read_text().strip(), timeout=300,
                             env=env)
    match = re.fullmatch(r"Interrupted at iteration (\d+): the snapshot of iteration (\d+) is saved in (\S+) "
                         r"\(gen_(\d{8})\.pt, dis_(\d{8})\.pt, optimizer\.pt\); to go on, run: (munit-rt train .*)", last)
    assert match, last
    saved = int(match[2])
    assert 1 <= saved < 8 and int(match[1]) == saved and Path(match[3]) == run_dir / "checkpoints"
    assert int(match[4]) == int(match[5]) == saved and (run_dir / "checkpoints" / f"gen_{saved:08d}.pt").is_file()
    command = shlex.split(match[6])
    assert command[:2] == ["munit-rt", "train"] and "--resume" in command, command
    resumed = subprocess.run(CLI + command[1:], capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert f"from iteration {saved} to 8" in resumed.stdout and "Done: iteration 8" in resumed.stdout


# -- 8. export makes missing parent folders --------------------------------------------------------------------
def test_export_creates_missing_parent_folders_and_removes_them_on_failure(tiny_checkpoint, tmp_path):
    target = tmp_path / "a" / "b" / "model.bundle"
    code, output = invoke("export", tiny_checkpoint, "-o", target, "--precision", "fp32")
    assert code == EXIT_OK, output
    assert (target / "manifest.json").is_file()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    code, output = invoke("export", broken, "-o", tmp_path / "x" / "y" / "z.bundle")
    assert code == EXIT_USAGE and "broken.pt" in one_line_error(output)
    assert not (tmp_path / "x").exists()


# -- 5. checkpoints carrying pickled code -----------------------------------------------------------------------
class AppendsViaOs:
    """Unpickling calls os.system: torch 2.14 words the refusal "unsupported GLOBAL posix.system ... blocked"."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"echo ran >> {shlex.quote(str(self.marker))}",))


class AppendsViaExec:
    """Unpickling calls builtins.exec: "Unsupported global: GLOBAL exec was not an allowed global"."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'a').write('ran\\n')",))


@pytest.fixture(params=[AppendsViaOs, AppendsViaExec], ids=["os.system", "exec"])
def malicious(request, tiny_checkpoint, tmp_path) -> tuple[Path, Path]:
    """A working munit-rt checkpoint with one more key whose unpickling appends a line to `marker`."""
    marker = tmp_path / "runs.txt"
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["extra"] = request.param(marker)
    path = tmp_path / "evil" / "gen_00000010.pt"
    path.parent.mkdir()
    torch.save(payload, path)
    assert not marker.exists()
    return path, marker


def runs(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.mark.parametrize("command", ["info", "export"])
def test_pickled_code_is_refused_with_the_documented_message(malicious, tmp_path, command):
    path, marker = malicious
    extra = ["-o", tmp_path / "out.bundle"] if command == "export" else []
    code, output = invoke(command, path, *extra)
    assert code == EXIT_USAGE
    assert one_line_error(output) == f"Error: {path}: {REFUSAL}"
    assert runs(marker) == 0 and not (tmp_path / "out.bundle").exists()


@pytest.mark.parametrize("command", ["info", "export"])
def test_trusted_checkpoint_is_loaded_once(malicious, tmp_path, command):
    path, marker = malicious
    extra = ["-o", tmp_path / "out.bundle", "--precision", "fp32"] if command == "export" else []
    code, output = invoke(command, "--trust-checkpoint", path, *extra)
    assert code == EXIT_OK, output
    assert runs(marker) == 1
