"""Shared fixtures: tiny MUNIT configs and checkpoints (dim 8, 32x32) so the suite stays fast on CPU."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pytest

CLI = [sys.executable, "-c", "from munit_rt.cli import main; main()"]  # `munit-rt` of this interpreter
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_CONFIG = {
    "gen": {"dim": 8, "mlp_dim": 16, "style_dim": 4, "activ": "relu", "n_downsample": 2, "n_res": 1,
            "pad_type": "reflect"},
    "dis": {"dim": 8, "norm": "none", "activ": "lrelu", "n_layer": 2, "gan_type": "lsgan", "num_scales": 2,
            "pad_type": "reflect"},
    "input_dim_a": 3, "input_dim_b": 3,
    "new_size": 32, "crop_image_height": 32, "crop_image_width": 32,
    "batch_size": 2, "num_workers": 0, "display_size": 2,
    "image_save_iter": 1000, "snapshot_save_iter": 1000, "log_iter": 1, "max_iter": 10,
}


def tiny_config_dict(**overrides):
    import copy

    data = copy.deepcopy(TINY_CONFIG)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


@pytest.fixture
def tiny_config():
    from munit_rt.training.config import config_from_dict

    return config_from_dict(tiny_config_dict(), source="tiny")


def write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def make_generators(config, seed: int = 0):
    import torch

    from munit_rt.training.families.munit.model import AdaINGen

    torch.manual_seed(seed)
    gens = {d: AdaINGen(config.input_dim(d), config.gen).eval() for d in ("a", "b")}
    # non-trivial weights everywhere (kaiming-like), so parity tests exercise every layer
    return gens


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_config) -> Path:
    """A munit-rt gen_XXXXXXXX.pt with random weights and the tiny config stored inside."""
    from munit_rt.training.checkpoint import save_checkpoint

    path = tmp_path / "gen_00000010.pt"
    save_checkpoint(path, "munit", make_generators(tiny_config), tiny_config, iteration=10)
    return path


@pytest.fixture
def official_checkpoint(tmp_path, tiny_config) -> tuple[Path, Path]:
    """An official-format gen file ({'a': sd, 'b': sd}, no config) and its YAML."""
    import torch

    gens = make_generators(tiny_config, seed=1)
    path = tmp_path / "official" / "gen_00001000.pt"
    path.parent.mkdir()
    torch.save({"a": gens["a"].state_dict(), "b": gens["b"].state_dict()}, path)
    yaml_path = write_yaml(tmp_path / "official" / "tiny.yaml", tiny_config_dict())
    return path, yaml_path


def require_shared_data(name: str = "utkface") -> Path:
    root = SHARED_DATA / name
    if not root.is_dir():
        pytest.skip(f"real photos not found at ../shared/data/{name} (only present on the project's machines)")
    return root


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    """Tiny tensors run fastest on one torch thread, and two stall badly on a shared 2-core machine.

    Only touches torch if a test module already imported it (the runtime tests must stay torch-free).
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch):
    """A user's $MUNIT_RT_MODEL must not leak into tests of the model resolution."""
    monkeypatch.delenv("MUNIT_RT_MODEL", raising=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny exported MUNIT bundle, shared by the tests of one module."""
    from test_bundle import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory)[1]


def write_image(path: Path, seed: int, size=(32, 32)) -> Path:
    """A random RGB PNG/JPEG (by suffix) of `size` (width, height)."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def invoke(*args) -> tuple[int, str]:
    """`munit-rt ARGS...` in-process (each argument as str): (exit code, output); real crashes re-raised."""
    from click.testing import CliRunner

    from munit_rt.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def translate(model: Path, *args) -> tuple[int, str]:
    """`munit-rt translate --model MODEL ARGS...` in-process: (exit code, output); real crashes re-raised."""
    return invoke("translate", "--model", model, *args)


def interrupt_mid_run(args: list, ready: Callable[[], bool], timeout: float, **popen) -> str:
    """`munit-rt ARGS...` as a real process, interrupted as Ctrl-C would once `ready()`: asserts that it exits
    with EXIT_INTERRUPTED and returns the last line of its stderr (what it says about the run)."""
    import signal
    import subprocess
    import time

    from munit_rt.cli.common import EXIT_INTERRUPTED

    process = subprocess.Popen(CLI + [str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None and time.monotonic() < deadline, f"not ready to interrupt after {timeout} s"
        time.sleep(0.005)
    process.send_signal(signal.SIGSTOP)  # the SIGINT then lands mid-run, however fast the machine is
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    return stderr.strip().splitlines()[-1]


RUN_FILES = ".munit-rt"  # the run record (and style codes) translate keeps in its output folder


def files_of(root: Path) -> dict[str, bytes]:
    """Every output file under `root` by relative POSIX path, with its bytes (for byte-for-byte run
    comparisons); the run record is left out."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(RUN_FILES)}


def listing(root: Path) -> list[str]:
    """Files and folders under `root` (relative POSIX paths, sorted), the run record left out."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.name.startswith(RUN_FILES))


def write_images(folder: Path, count: int, size=(40, 36), seed=0, ext=".png") -> list[Path]:
    """`count` random RGB training images img0..img{count-1} of `size` (width, height) in `folder`."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"img{i}{ext}"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def counts_line(output: str) -> str:
    """The line of a translate summary that counts inputs ("N inputs: ... translated ...")."""
    return next((line for line in output.splitlines() if " inputs: " in line), "")
