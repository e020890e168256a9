"""The registry, proven: a fourth family defined in this module alone and taken through the command line, train ->
export -> info -> translate (-> export-triton), with no change to shared code.

The "toy" family is one 3x3 convolution and a tanh, image -> image. Its torch half (a TrainingFamily: config,
generator, graph split, preprocessing, manifest keys, data and a trainer that pulls the output toward its input with
an L1 loss through the engine's FamilyTrainer / Job) and its runtime half (a Family: manifest keys, the graph, the
translate plan, Triton layout, info lines) are registered by a fixture and unregistered after it. The translated
files are checked against the trained convolution computed here in numpy, and the bundle against the contract
checks every built-in family passes (tests/contract/checks.py).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the toy family trains and exports with torch")
pytest.importorskip("onnx", reason="export writes ONNX graphs")
pytest.importorskip("yaml", reason="train reads a YAML config")

from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from conftest import write_images, write_yaml  # noqa: E402
from munit_rt.bundle.fields import ManifestError  # noqa: E402
from munit_rt.families.base import Family, GeneratePlan  # noqa: E402
from munit_rt.preprocess import Preprocess, pil_filter  # noqa: E402
from munit_rt.training.config_fields import RunConfig, key  # noqa: E402
from munit_rt.training.family import GraphSpec, TensorSpec, TrainingFamily  # noqa: E402
from munit_rt.translator import Translator  # noqa: E402

NAME = "toy"
SIZE = 16  # training crops and the preprocessing's shorter side


# ============================================================================================ torch half

@dataclass(frozen=True)
class ToyConfig(RunConfig):  # the run keys (max_iter: `train --max-iter` overrides num_iters), redeclared if other
    channels: int = key(3, choices=(1, 3))
    kernel: int = key(3, choices=(1, 3, 5))
    size: int = key(SIZE, min=4)
    lr: float = key(0.01, min=0.0)
    num_iters: int = key(10, min=1)
    batch_size: int = key(2, positive=True)
    num_workers: int = key(0, min=0)
    log_iter: int = key(1, positive=True)
    snapshot_save_iter: int = key(1000, positive=True)
    display_size: int = key(2, positive=True)

    def to_dict(self) -> dict:
        return {"family": NAME, **dataclasses.asdict(self)}


class ToyGenerator(nn.Module):
    """One convolution (zero padding, the output as large as the input), then tanh."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(image))


class ToyImages(torch.utils.data.Dataset):
    """Item (index, epoch) -> the image resized to size x size with the preprocessing's filter, in [-1, 1]."""

    def __init__(self, paths: list[Path], config: ToyConfig):
        self.paths, self.config = paths, config

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        from munit_rt.training.data import load_image, to_tensor

        image = load_image(self.paths[item[0]], self.config.channels)
        return to_tensor(image.resize((self.config.size, self.config.size), pil_filter("bilinear")))


def toy_trainer_class():
    from munit_rt.training.engine.trainer import FamilyTrainer

    class ToyTrainer(FamilyTrainer):
        """L1 between the generator's output and its input: the convolution learns to pass images through."""

        family = NAME

        def __init__(self, config: ToyConfig):
            super().__init__()
            self.config = config
            self.gen = ToyGenerator(config.channels, config.kernel)
            self.optimizer = torch.optim.Adam(self.gen.parameters(), lr=config.lr)

        def generators(self):
            return {"G": self.gen}

        def discriminators(self):
            return {}

        def lr(self) -> float:
            return self.optimizer.param_groups[0]["lr"]

        def train_step(self, batch, iteration):
            images = batch["images"]
            self.optimizer.zero_grad()
            loss = F.l1_loss(self.gen(images), images)
            loss.backward()
            self.dist.average_gradients(self.optimizer)
            self.optimizer.step()
            return {"loss_l1": loss}

        def sample_grids(self, display, iteration, final):
            return {f"toy_{iteration:08d}": [display, self.gen(display)]}

        def training_state(self):
            return {"optimizer": self.optimizer.state_dict()}

        def load_training_state(self, state):
            self.optimizer.load_state_dict(state["optimizer"])

    return ToyTrainer


class ToyTrainingFamily(TrainingFamily):
    name = NAME
    title = "Toy"
    config_class = ToyConfig
    generator_keys = ("G",)
    snapshot_prefix = NAME
    checkpoint_names = "munit-rt toy_XXXXXXXX.pt"
    tiny_config = {"channels": 3, "kernel": 3}  # what the contract suite would train and export

    def build_generator(self, config: ToyConfig, key: str) -> nn.Module:
        return ToyGenerator(config.channels, config.kernel)

    def model_part(self, config: ToyConfig) -> tuple:
        return (config.channels, config.kernel)

    def graphs(self, gens, config: ToyConfig, **options) -> list[GraphSpec]:
        from munit_rt.training.graphs import EXPORT_BATCH, GENERATOR_UNIT, generator_cases, trace_size

        image = TensorSpec("image", ("N", config.channels, "H", "W"))
        example = torch.randn(EXPORT_BATCH, config.channels, *trace_size(GENERATOR_UNIT),
                              generator=torch.Generator().manual_seed(0))
        return [GraphSpec("generator", "generator", None, gens["G"], (image,),
                          (TensorSpec("output", ("N", config.channels, "H", "W")),), (example,),
                          partial(generator_cases, (image,)), image_output=True, manifest_fields={"generator": "G"})]

    def preprocess(self, config: ToyConfig) -> Preprocess:
        return Preprocess(resize="shorter_side", size=config.size, resample="bilinear", multiple=4, fit="crop",
                          mean=(0.5,) * config.channels, std=(0.5,) * config.channels)

    def manifest_model(self, ckpt, gens, graphs) -> dict:
        return {"channels": ckpt.config.channels, "kernel": ckpt.config.kernel}

    def describe_checkpoint(self, ckpt, config_path) -> str:
        return f"family  {NAME}\niteration  {ckpt.iteration}\nkernel  {ckpt.config.kernel}"

    def open_training_data(self, config: ToyConfig, data_dir, world_size: int, config_dir=None) -> ToyImages:
        from munit_rt.training.data import check_images_readable, find_images
        from munit_rt.training.errors import DataError

        paths = find_images(Path(data_dir)) if data_dir is not None else []
        if len(paths) < config.batch_size * world_size:
            raise DataError(f"{data_dir}: {len(paths)} images, fewer than batch_size {config.batch_size}")
        check_images_readable(paths)
        return ToyImages(paths, config)

    def build_job(self, config: ToyConfig, data: ToyImages, device, dist):
        from munit_rt.training.engine.batches import CyclingBatches, EpochBatchSampler
        from munit_rt.training.engine.driver import Job

        sampler = EpochBatchSampler(len(data), config.batch_size, config.seed, NAME, dist.rank, dist.world_size)
        loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=config.num_workers)
        display = torch.stack([data[(i, 0)] for i in range(min(config.display_size, len(data)))])
        total = config.max_iter if config.max_iter is not None else config.num_iters
        return Job(toy_trainer_class()(config).to(device), CyclingBatches({"images": loader}), display, total)


# ========================================================================================== runtime half

@dataclass(frozen=True)
class ToyModel:
    channels: int
    kernel: int


class ToyTranslator(Translator):
    family = NAME

    def generate(self, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """[N, C, H, W] in [-1, 1] -> [N, C, H, W]; H, W multiples of the bundle's."""
        images = self._check_image_array(images, self.bundle.model.channels, "images")
        return self._run_batches("generator", {"image": images}, self._check_batch_size(batch_size))


class ToyFamily(Family):
    name = NAME
    title = "Toy"
    translator = ToyTranslator
    options: dict[str, str] = {}
    ignored_why = "one output per input"

    def parse_model(self, fields) -> ToyModel:
        return ToyModel(fields.int("channels", low=1, high=4), fields.int("kernel", low=1, high=15))

    def graphs(self, model: ToyModel):
        return {"generator": (("image",), ("output",))}

    def check(self, manifest) -> None:
        for kind in ("inputs", "outputs"):
            for tensor in getattr(manifest.graphs["generator"], kind):
                if tensor.rank != 4 or tensor.shape[1] != manifest.model.channels:
                    raise ManifestError(f"graphs.generator.{kind}", f"'{tensor.name}' must be [N, "
                                        f"{manifest.model.channels}, H, W], got {list(tensor.shape)}")

    def channels(self, manifest, domain=None) -> int:
        return manifest.model.channels

    def plan(self, bundle, options) -> GeneratePlan:
        return GeneratePlan(bundle.preprocess.with_size(options.size), bundle.model.channels, ["output"], True,
                            batch_size=options.batch_size)

    def triton_layout(self, bundle, directions, prefix):
        from munit_rt.triton.layout import Layout, graph_model

        return Layout((graph_model(bundle, prefix, "generator"),))

    def describe(self, manifest) -> list[tuple[str, str]]:
        model = manifest.model
        return [("toy", f"{model.channels} channels, one {model.kernel}x{model.kernel} convolution"),
                ("translate", "one output per input")]


# ============================================================================================== the tests

@pytest.fixture
def toy_family():
    """Both halves registered under NAME for one test, then removed again."""
    from munit_rt import families as runtime_registry
    from munit_rt.training import registry as training_registry

    training = training_registry.register(ToyTrainingFamily())
    runtime = runtime_registry.register(ToyFamily())
    try:
        yield training, runtime
    finally:
        training_registry.unregister(NAME)
        runtime_registry.unregister(NAME)


def cli(*args) -> str:
    """`munit-rt ARGS...` in-process; exit 0 expected; the output."""
    from munit_rt.cli import cli as group

    result = CliRunner().invoke(group, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def toy_conv(images_u8_hwc: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The toy generator on uint8 [H, W, C] pixels, in numpy: x = pixel/127.5 - 1, zero-padded convolution
    (cross-correlation, as torch), tanh, then round(clip((y + 1) / 2) * 255) -> uint8 [H, W, C]."""
    x = images_u8_hwc.astype(np.float64).transpose(2, 0, 1) / 127.5 - 1.0
    c_out, c_in, k, _ = weight.shape
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h, w = x.shape[1:]
    y = np.zeros((c_out, h, w))
    for o in range(c_out):
        y[o] = bias[o]
        for i in range(c_in):
            for dy in range(k):
                for dx in range(k):
                    y[o] += weight[o, i, dy, dx] * padded[i, dy:dy + h, dx:dx + w]
    pixels = np.clip((np.tanh(y) + 1.0) / 2.0, 0.0, 1.0) * 255.0
    return np.rint(pixels).astype(np.uint8).transpose(1, 2, 0)


def test_a_family_defined_in_a_test_module_trains_exports_and_translates(toy_family, tmp_path):
    data = tmp_path / "data"
    write_images(data, 4, size=(20, 18), seed=1)
    config = write_yaml(tmp_path / "toy.yaml", {"family": NAME, "num_iters": 50, "lr": 0.05})
    run, bundle, out = tmp_path / "run", tmp_path / "toy.bundle", tmp_path / "translated"

    # train: three iterations through the one driver; a snapshot of the toy's own prefix, its config beside it
    output = cli("train", "--config", config, "--data", data, "--out", run, "--max-iter", 3)
    assert "Done: iteration 3" in output
    checkpoint = run / "checkpoints" / "toy_00000003.pt"
    assert checkpoint.is_file() and (run / "checkpoints" / "dis_00000003.pt").is_file()
    assert (run / "images" / "toy_00000003.png").is_file()
    assert [json.loads(line)["iteration"] for line in (run / "logs" / "stats.jsonl").read_text().splitlines()] \
        == [1, 2, 3]
    stored = torch.load(checkpoint, weights_only=True)
    assert stored["munit_rt"]["family"] == NAME and stored["munit_rt"]["iteration"] == 3
    assert stored["munit_rt"]["config"]["max_iter"] == 3 and stored["munit_rt"]["config"]["lr"] == 0.05
    weight, bias = stored["G"]["conv.weight"].numpy(), stored["G"]["conv.bias"].numpy()
    torch.manual_seed(0)  # the trainer's start: the driver seeds with config.seed, then the job builds the generator
    assert not np.allclose(weight, ToyGenerator(3, 3).conv.weight.detach().numpy())  # three Adam steps moved it

    # info on the checkpoint: the family's own description
    assert "kernel  3" in cli("info", checkpoint)

    # export: both precisions, every graph checked against PyTorch
    output = cli("export", checkpoint, "-o", bundle)
    assert f"wrote {bundle}" in output and "generator" in output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert (manifest["family"], manifest["channels"], manifest["kernel"]) == (NAME, 3, 3)
    assert list(manifest["graphs"]) == ["generator"] and manifest["precisions"] == ["fp32", "fp16"]

    # info on the bundle: the family named, its own lines, parity ok
    output = cli("info", bundle)
    assert f"family      {NAME} (schema 2" in output
    assert "toy         3 channels, one 3x3 convolution" in output
    assert "shorter side -> 16 px (bilinear)" in output

    # translate: one output per input, equal to the trained convolution computed here
    images = tmp_path / "images"
    write_images(images, 3, size=(20, 16), seed=2)  # at the preprocessing size already: no resize, no crop
    output = cli("translate", "-m", bundle, images, "-o", out, "--styles", 2)
    assert "note: --styles is ignored for Toy bundles (one output per input)" in output
    assert "3 inputs: 3 translated, 0 already done, 0 failed" in output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["img0.png", "img1.png", "img2.png"]
    for name in ("img0.png", "img1.png", "img2.png"):
        expected = toy_conv(np.asarray(Image.open(images / name).convert("RGB")), weight, bias)
        got = np.asarray(Image.open(out / name))
        assert got.shape == expected.shape == (16, 20, 3)
        diff = np.abs(got.astype(int) - expected.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (name, diff.max())  # float rounding: one level
    output = cli("translate", "-m", bundle, images, "-o", out)
    assert "3 inputs: 0 translated, 3 already done, 0 failed" in output

    # serving: the family's Triton layout, one model for its one graph, the graph file copied unchanged
    output = cli("export-triton", bundle, "-o", tmp_path / "triton")
    assert sorted(p.name for p in (tmp_path / "triton").iterdir()) == ["toy_generator"]
    assert (tmp_path / "triton" / "toy_generator" / "1" / "model.onnx").read_bytes() == \
        (bundle / "fp32" / "generator.onnx").read_bytes()


def test_the_toy_bundle_meets_the_family_contract(toy_family, tmp_path):
    """The checks every registered family passes (tests/contract/checks.py), on a toy bundle of random weights."""
    from contract import checks
    from munit_rt.export.random_bundle import random_bundle

    training, _runtime = toy_family
    bundle = random_bundle(NAME, tmp_path / "run", training.tiny_config, precision="both", seed=5)
    exported = checks.Exported(NAME, bundle, bundle.with_suffix(".pt"),
                               json.loads((bundle / "manifest.json").read_text()), tmp_path)
    for check in checks.EXPORT_CHECKS:
        check(exported)
    checks.check_bundle_opens(exported)
    checks.check_info(exported)
    inputs = tmp_path / "inputs"
    write_images(inputs, 2, size=(24, 20), seed=3)
    checks.check_backends_agree(exported, inputs)


def test_unregistering_the_toy_family_leaves_the_registries_as_they_were():
    from munit_rt import families as runtime_registry
    from munit_rt.training import registry as training_registry

    before = (set(training_registry.families()), set(runtime_registry.families()))
    training_registry.register(ToyTrainingFamily())
    runtime_registry.register(ToyFamily())
    training_registry.unregister(NAME)
    runtime_registry.unregister(NAME)
    assert (set(training_registry.families()), set(runtime_registry.families())) == before
    assert NAME not in before[0] | before[1]
