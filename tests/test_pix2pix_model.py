"""pix2pix model: the U-Net against an independent re-statement, upstream state dicts, test-time modes, ONNX,
and the paired-data script.

The reference here is written from the published architecture (Isola et al. 2017; junyanz
pytorch-CycleGAN-and-pix2pix networks.py as documented), not from the module under test: the expected
parameter keys and shapes (`expected_params`) and a forward pass over a state dict's tensors with
torch.nn.functional only (`reference_unet`). Tiny widths (ngf 2) keep it fast; unet_128 runs at 128 x 128,
unet_256 at 256 x 256, their smallest sizes.
"""
from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="the pix2pix model is torch code (pip install 'munit-rt[train]')")
F = torch.nn.functional

from munit_rt.training.families.pix2pix.graphs import (  # noqa: E402
    TrainModeReference, generator_graph, parity_images, parity_sizes)
from munit_rt.training.families.pix2pix.model import (  # noqa: E402
    UnetGenerator, inference_generator, infer_architecture, looks_like_unet, patch_discriminator, unet_generator)
from munit_rt.training.families.pix2pix.upstream import remap  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EPS = 1e-5
NGF = 2
VARIANTS = [(7, "batch"), (7, "instance"), (7, "none"), (8, "batch"), (8, "instance")]  # (num_downs, norm)


# ----------------------------------------------------------------------------- the independent reference

def level_channels(level: int, ngf: int, input_nc: int, output_nc: int) -> tuple[int, int, int]:
    """(input, inner, outer) channels of the block `level` steps in from the outside: ngf, 2, 4, then 8 ngf."""
    if level == 0:
        return input_nc, ngf, output_nc
    outer = ngf * min(2 ** (level - 1), 8)
    return outer, ngf * min(2 ** level, 8), outer


def level_prefix(level: int) -> str:
    return "model" if level == 0 else "model.model.1" + ".model.3" * (level - 1)


def expected_params(num_downs: int, norm: str, ngf: int = NGF, input_nc: int = 3, output_nc: int = 3) -> dict:
    """Every key of an upstream UnetGenerator state dict -> its shape (None: a scalar num_batches_tracked)."""
    bias = norm == "instance"  # upstream use_bias: instance norm only
    params: dict[str, tuple | None] = {}

    def norm_layer(key: str, channels: int) -> None:
        if norm == "batch":  # affine and tracked; instance: neither; none: Identity
            params.update({f"{key}.weight": (channels,), f"{key}.bias": (channels,),
                           f"{key}.running_mean": (channels,), f"{key}.running_var": (channels,),
                           f"{key}.num_batches_tracked": None})

    for level in range(num_downs):
        cin, inner, outer = level_channels(level, ngf, input_nc, output_nc)
        p = f"{level_prefix(level)}.model"
        if level == 0:
            params[f"{p}.0.weight"] = (inner, cin, 4, 4)
            if bias:
                params[f"{p}.0.bias"] = (inner,)
            params[f"{p}.3.weight"], params[f"{p}.3.bias"] = (inner * 2, outer, 4, 4), (outer,)  # always a bias
        elif level == num_downs - 1:
            params[f"{p}.1.weight"] = (inner, cin, 4, 4)
            params[f"{p}.3.weight"] = (inner, outer, 4, 4)
            if bias:
                params[f"{p}.1.bias"], params[f"{p}.3.bias"] = (inner,), (outer,)
            norm_layer(f"{p}.4", outer)
        else:
            params[f"{p}.1.weight"] = (inner, cin, 4, 4)
            norm_layer(f"{p}.2", inner)
            params[f"{p}.5.weight"] = (inner * 2, outer, 4, 4)
            if bias:
                params[f"{p}.1.bias"], params[f"{p}.5.bias"] = (inner,), (outer,)
            norm_layer(f"{p}.6", outer)
    return params


def upstream_state(num_downs: int, norm: str, seed: int = 0, **channels) -> dict:
    """Random tensors for `expected_params`, with BatchNorm running statistics away from (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in expected_params(num_downs, norm, **channels).items():
        if shape is None:
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(("running_mean", ".bias")):
            state[key] = torch.randn(shape, generator=g) * 0.2
        elif len(shape) == 1:  # norm weights
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            fan_in = shape[1] * 16
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    return state


def normalize(x, state: dict, key: str, norm: str, per_image: bool):
    """BatchNorm / InstanceNorm written out: (x - mean) / sqrt(var + eps), biased variance."""
    if norm == "none":
        return x
    if norm == "instance" or per_image:  # statistics of each image and channel over H x W
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    else:
        mean = state[f"{key}.running_mean"].view(1, -1, 1, 1)
        var = state[f"{key}.running_var"].view(1, -1, 1, 1)
    y = (x - mean) / torch.sqrt(var + EPS)
    if norm == "batch":
        y = y * state[f"{key}.weight"].view(1, -1, 1, 1) + state[f"{key}.bias"].view(1, -1, 1, 1)
    return y


def reference_unet(state: dict, x, num_downs: int, norm: str, per_image: bool):
    """The U-Net forward pass over `state`'s tensors (dropout off); per_image: training-mode BatchNorm applied
    to each image alone, else running statistics."""

    def conv(h, key, transpose=False):
        op = F.conv_transpose2d if transpose else F.conv2d
        return op(h, state[f"{key}.weight"], state.get(f"{key}.bias"), stride=2, padding=1)

    def block(h, level):
        p = f"{level_prefix(level)}.model"
        if level == 0:
            inner = block(conv(h, f"{p}.0"), 1)
            return torch.tanh(conv(F.relu(inner), f"{p}.3", transpose=True))
        skip = F.leaky_relu(h, 0.2)  # upstream's in-place LeakyReLU rewrites the tensor the skip concatenates
        down = conv(skip, f"{p}.1")
        if level == num_downs - 1:
            up = normalize(conv(F.relu(down), f"{p}.3", True), state, f"{p}.4", norm, per_image)
        else:
            inner = block(normalize(down, state, f"{p}.2", norm, per_image), level + 1)
            up = normalize(conv(F.relu(inner), f"{p}.5", True), state, f"{p}.6", norm, per_image)
        return torch.cat([skip, up], 1)

    with torch.no_grad():
        return block(x, 0)


def loaded_model(num_downs: int, norm: str, dropout: bool, seed: int = 0) -> tuple[UnetGenerator, dict]:
    state = upstream_state(num_downs, norm, seed)
    model = UnetGenerator(3, 3, num_downs, NGF, norm, use_dropout=dropout)
    model.load_state_dict(state, strict=True)
    return model, state


def images(num_downs: int, batch: int, seed: int = 1, width_multiples: int = 1):
    m = 2 ** num_downs
    return torch.from_numpy(parity_images(np.random.default_rng(seed), batch, 3, m, m * width_multiples))


# -------------------------------------------------------------------------------------- (a) forward pass

@pytest.mark.parametrize("dropout", [True, False], ids=["dropout", "no_dropout"])
@pytest.mark.parametrize("num_downs,norm", VARIANTS)
def test_unet_matches_reference_in_both_modes(num_downs, norm, dropout):
    model, state = loaded_model(num_downs, norm, dropout)
    x = images(num_downs, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        eval_out = inference_generator(model, eval_mode=True)(x)
        per_image_out = inference_generator(model, eval_mode=False)(x)
        upstream_train_mode = TrainModeReference(model)(x)  # the export's parity reference for eval false
    assert (eval_out - reference_unet(state, x, num_downs, norm, per_image=False)).abs().max() <= 1e-5
    assert (per_image_out - reference_unet(state, x, num_downs, norm, per_image=True)).abs().max() <= 1e-5
    assert (upstream_train_mode - per_image_out).abs().max() <= 1e-5
    if norm == "batch":  # the two modes really differ, and neither touched the running statistics
        assert (eval_out - per_image_out).abs().max() > 1e-2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_dropout_layers_where_upstream_puts_them():
    for netG, num_downs in (("unet_128", 7), ("unet_256", 8)):
        model = unet_generator(netG, ngf=NGF)
        assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == num_downs - 5
        assert all(m.p == 0.5 for m in model.modules() if isinstance(m, torch.nn.Dropout))
        without = unet_generator(netG, ngf=NGF, no_dropout=True)
        assert not any(isinstance(m, torch.nn.Dropout) for m in without.modules())


def test_upstream_parameter_counts_at_full_width():
    """Upstream prints 54.414 M for pix2pix's unet_256 G and 2.769 M for its basic D (ngf = ndf = 64)."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert round(count(unet_generator("unet_256")) / 1e6, 3) == 54.414
    assert round(count(patch_discriminator(3, 3)) / 1e6, 3) == 2.769
    assert patch_discriminator(3, 1).model[0].in_channels == 4  # judges the (A, B) pair


# --------------------------------------------------------------------------------------- (b) state dicts

@pytest.mark.parametrize("num_downs,norm", VARIANTS)
def test_upstream_keys_load_strictly(num_downs, norm, tmp_path):
    model = UnetGenerator(3, 3, num_downs, NGF, norm, use_dropout=True)
    expected = expected_params(num_downs, norm)
    assert {k: (tuple(v.shape) if v.ndim else None) for k, v in model.state_dict().items()} == expected
    path = tmp_path / "latest_net_G.pth"
    torch.save(upstream_state(num_downs, norm), path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(remap(state, model), strict=True)
    assert torch.equal(model.state_dict()["model.model.0.weight"], state["model.model.0.weight"])


def test_old_instance_norm_file_loads_after_remap(tmp_path):
    """Pre-0.4 files hold running_mean/var (and num_batches_tracked) for InstanceNorm layers tracking nothing."""
    state = upstream_state(7, "instance")
    stale = {}
    for level in range(1, 7):
        p = f"{level_prefix(level)}.model"
        for index in ((4,) if level == 6 else (2, 6)):
            stale[f"{p}.{index}.running_mean"] = torch.zeros(4)
            stale[f"{p}.{index}.running_var"] = torch.ones(4)
            stale[f"{p}.{index}.num_batches_tracked"] = torch.tensor(0)
    path = tmp_path / "old_net_G.pth"
    torch.save({**state, **stale}, path)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    model = UnetGenerator(3, 3, 7, NGF, "instance")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        model.load_state_dict(loaded, strict=True)
    remapped = remap(loaded, model)
    assert set(remapped) == set(state) and len(loaded) == len(state) + len(stale)  # pure: the input is kept
    model.load_state_dict(remapped, strict=True)
    assert infer_architecture(loaded).norm == "instance"


def test_old_batch_norm_file_without_num_batches_tracked_loads(tmp_path):
    state = {k: v for k, v in upstream_state(8, "batch").items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old_net_G.pth"
    torch.save(state, path)
    model = UnetGenerator(3, 3, 8, NGF, "batch")
    model.load_state_dict(remap(torch.load(path, weights_only=True), model), strict=True)


# ---------------------------------------------------------------------------------- (c) architecture

@pytest.mark.parametrize("num_downs,norm", VARIANTS)
def test_infer_architecture(num_downs, norm):
    arch = infer_architecture(upstream_state(num_downs, norm, ngf=3, input_nc=1, output_nc=3))
    assert (arch.input_nc, arch.output_nc, arch.ngf, arch.num_downs, arch.norm) == (1, 3, 3, num_downs, norm)
    assert arch.netG == {7: "unet_128", 8: "unet_256"}[num_downs]


def test_unet_is_told_from_a_resnet_generator():
    from munit_rt.training.families.cyclegan.model import ResnetGenerator

    assert looks_like_unet(upstream_state(7, "batch"))
    resnet = ResnetGenerator(3, 3, 4, "instance", False, 2).state_dict()
    assert not looks_like_unet(resnet)
    with pytest.raises(ValueError, match="not an upstream U-Net"):
        infer_architecture(resnet)


# ------------------------------------------------------------------------------ (d) batch independence

@pytest.mark.parametrize("num_downs", [7, 8])
def test_per_image_statistics_ignore_batch_company(num_downs):
    model, _ = loaded_model(num_downs, "batch", dropout=True)
    per_image = inference_generator(model, eval_mode=False)
    x = images(num_downs, 3, seed=4)
    with torch.no_grad():
        together = per_image(x)
        alone = torch.cat([per_image(x[i:i + 1]) for i in range(3)])
        with_others = per_image(torch.cat([x[1:2], images(num_downs, 2, seed=9)]))[0]
    assert (together - alone).abs().max() <= 1e-5
    assert (with_others - alone[1]).abs().max() <= 1e-5


# ------------------------------------------------------------------------------------------- (e) ONNX

def export_onnx(spec) -> bytes:
    """As export/onnx_export.py's _trace_to_onnx: the TorchScript exporter with named dynamic axes."""
    dynamic_axes = {t.name: {axis: dim for axis, dim in enumerate(t.shape) if isinstance(dim, str)}
                    for t in spec.inputs + spec.outputs}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(spec.module, spec.example_inputs, buffer, dynamo=False, opset_version=18,
                          input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    return buffer.getvalue()


@pytest.mark.parametrize("eval_mode", [False, True], ids=["eval_false", "eval_true"])
@pytest.mark.parametrize("num_downs,norm", [(7, "instance"), (8, "batch")])
def test_onnx_generator_graph_matches_pytorch(num_downs, norm, eval_mode):
    onnx = pytest.importorskip("onnx", reason="pip install 'munit-rt[export]'")
    ort = pytest.importorskip("onnxruntime")
    model, state = loaded_model(num_downs, norm, dropout=True)
    spec = generator_graph(model, eval_mode=eval_mode, direction="BtoA")
    assert spec.name == "generator" and spec.manifest_fields == {"generator": "G", "direction": "BtoA"}
    assert spec.example_inputs[0].shape[2:] not in parity_sizes(num_downs)
    data = export_onnx(spec)
    ops = {node.op_type for node in onnx.load_from_string(data).graph.node}
    assert "Dropout" not in ops
    if norm == "batch":
        assert ("BatchNormalization" in ops) != ("InstanceNormalization" in ops) and \
            ("InstanceNormalization" in ops) == (not eval_mode)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    cases = spec.cases(np.random.default_rng(0))
    m = 2 ** num_downs
    assert [(c.batch, c.height, c.width) for c in cases] == [(1, m, m), (1, m, 2 * m), (3, m, m), (3, m, 2 * m)]
    for case in cases:
        got = session.run(["output"], case.feeds)[0]
        x = torch.from_numpy(case.feeds["image"])
        with torch.no_grad():
            expected = spec.reference_module(x).numpy()
        assert got.shape == (case.batch, 3, case.height, case.width)
        assert np.abs(got - expected).max() <= 1e-4, case.label()
        independent = reference_unet(state, x, num_downs, norm, per_image=not eval_mode).numpy()
        assert np.abs(got - independent).max() <= 1e-4, case.label()


# ---------------------------------------------------------------------------------- (f) paired data

def test_make_pairs_writes_aligned_edges_and_photos(tmp_path):
    source = tmp_path / "photos"
    source.mkdir()
    rng = np.random.default_rng(3)
    photos = {}
    for i, (w, h) in enumerate([(40, 30), (24, 36), (32, 32)]):
        pixels = np.full((h, w, 3), 200, np.uint8)
        pixels[h // 4:3 * h // 4, w // 4:3 * w // 4] = rng.integers(0, 80, 3, dtype=np.uint8)  # a dark box
        pixels = np.clip(pixels + rng.integers(-5, 6, pixels.shape), 0, 255).astype(np.uint8)
        photos[f"photo{i}"] = Image.fromarray(pixels)
        photos[f"photo{i}"].save(source / f"photo{i}.jpg" if i == 0 else source / f"photo{i}.png")
    size = 24
    out = tmp_path / "pairs"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "make_pairs.py"), str(source), "-o", str(out),
                          "--size", str(size), "--val", "0.34", "--test", "0.34", "--halves"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    written = sorted(p for p in out.glob("*/*.png") if p.parent.name in ("train", "val", "test"))
    assert sorted(p.parent.name for p in written) == ["test", "train", "val"]
    for path in written:
        pair = np.asarray(Image.open(path))
        for index, half in enumerate("AB"):  # --halves: each half alone too
            alone = np.asarray(Image.open(out / f"{path.parent.name}{half}" / path.name))
            assert np.array_equal(alone, pair[:, index * size:(index + 1) * size])
        assert pair.shape == (size, 2 * size, 3)
        photo = Image.open(source / (path.stem + (".jpg" if path.stem == "photo0" else ".png"))).convert("RGB")
        side = min(photo.size)  # the largest centred square, then bicubic to size x size
        left, top = round((photo.width - side) / 2), round((photo.height - side) / 2)
        expected = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        assert np.array_equal(pair[:, size:], np.asarray(expected))
        edges = pair[:, :size]
        assert set(np.unique(edges)) <= {0, 255} and (edges[..., :1] == edges).all()
        assert 0 < (edges == 0).mean() < 0.5  # the box's outline, on white
