"""MUNIT model: shapes, official parameter names, layer numerics and official-checkpoint loading.

References are independent of the code under test: key lists written out by hand from the official
NVlabs/MUNIT `networks.py`, and the normalisation formulas spelled out here.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from conftest import make_generators, tiny_config_dict
from munit_rt.training.config import config_from_dict
from munit_rt.training.errors import CheckpointError
from munit_rt.training.families.munit.layers import AdaptiveInstanceNorm2d, LayerNorm
from munit_rt.training.families.munit.model import AdaINGen, MsImageDis
from munit_rt.training.families.munit.upstream import remap
from munit_rt.training.weights import load_state_dict_strict

# Tiny config (conftest): gen dim 8, mlp_dim 16, style_dim 4, n_downsample 2, n_res 1; dis dim 8, n_layer 2,
# 2 scales. Official attribute order: AdaINGen = enc_style, enc_content, dec, mlp; Conv2dBlock = pad, norm,
# activation, conv (so norm keys come before conv keys); LayerNorm = gamma, beta.


EXPECTED_GEN_KEYS = [
    # style encoder: c7s1-8, d16, d32, d32, d32 (no norm), global pool (model.5), 1x1 conv to style_dim
    "enc_style.model.0.conv.weight", "enc_style.model.0.conv.bias",
    "enc_style.model.1.conv.weight", "enc_style.model.1.conv.bias",
    "enc_style.model.2.conv.weight", "enc_style.model.2.conv.bias",
    "enc_style.model.3.conv.weight", "enc_style.model.3.conv.bias",
    "enc_style.model.4.conv.weight", "enc_style.model.4.conv.bias",
    "enc_style.model.6.weight", "enc_style.model.6.bias",
    # content encoder: c7s1-8, d16, d32 (instance norm without parameters), ResBlocks(1) at model.3
    "enc_content.model.0.conv.weight", "enc_content.model.0.conv.bias",
    "enc_content.model.1.conv.weight", "enc_content.model.1.conv.bias",
    "enc_content.model.2.conv.weight", "enc_content.model.2.conv.bias",
    "enc_content.model.3.model.0.model.0.conv.weight", "enc_content.model.3.model.0.model.0.conv.bias",
    "enc_content.model.3.model.0.model.1.conv.weight", "enc_content.model.3.model.0.model.1.conv.bias",
    # decoder: AdaIN ResBlocks(1) at model.0, then (upsample, c5 + LayerNorm) x 2, c7s1-3 + tanh
    "dec.model.0.model.0.model.0.norm.running_mean", "dec.model.0.model.0.model.0.norm.running_var",
    "dec.model.0.model.0.model.0.conv.weight", "dec.model.0.model.0.model.0.conv.bias",
    "dec.model.0.model.0.model.1.norm.running_mean", "dec.model.0.model.0.model.1.norm.running_var",
    "dec.model.0.model.0.model.1.conv.weight", "dec.model.0.model.0.model.1.conv.bias",
    "dec.model.2.norm.gamma", "dec.model.2.norm.beta", "dec.model.2.conv.weight", "dec.model.2.conv.bias",
    "dec.model.4.norm.gamma", "dec.model.4.norm.beta", "dec.model.4.conv.weight", "dec.model.4.conv.bias",
    "dec.model.5.conv.weight", "dec.model.5.conv.bias",
    # MLP: style_dim -> mlp_dim -> mlp_dim -> 2 AdaIN layers x (32 shifts + 32 scales)
    "mlp.model.0.fc.weight", "mlp.model.0.fc.bias",
    "mlp.model.1.fc.weight", "mlp.model.1.fc.bias",
    "mlp.model.2.fc.weight", "mlp.model.2.fc.bias",
]
EXPECTED_GEN_SHAPES = {
    "enc_style.model.0.conv.weight": (8, 3, 7, 7), "enc_style.model.2.conv.weight": (32, 16, 4, 4),
    "enc_style.model.4.conv.weight": (32, 32, 4, 4), "enc_style.model.6.weight": (4, 32, 1, 1),
    "enc_content.model.2.conv.weight": (32, 16, 4, 4),
    "enc_content.model.3.model.0.model.1.conv.weight": (32, 32, 3, 3),
    "dec.model.0.model.0.model.0.norm.running_mean": (32,), "dec.model.2.conv.weight": (16, 32, 5, 5),
    "dec.model.2.norm.gamma": (16,), "dec.model.4.conv.weight": (8, 16, 5, 5),
    "dec.model.5.conv.weight": (3, 8, 7, 7), "mlp.model.0.fc.weight": (16, 4),
    "mlp.model.2.fc.weight": (128, 16), "mlp.model.2.fc.bias": (128,),
}
# per scale: Conv2dBlock d8, Conv2dBlock d16 (norm none), 1x1 conv to one channel
EXPECTED_DIS_KEYS = [f"cnns.{s}.{key}" for s in (0, 1) for key in (
    "0.conv.weight", "0.conv.bias", "1.conv.weight", "1.conv.bias", "2.weight", "2.bias")]


def test_generator_keys_match_official_layout(tiny_config):
    state = AdaINGen(3, tiny_config.gen).state_dict()
    assert list(state) == EXPECTED_GEN_KEYS
    for key, shape in EXPECTED_GEN_SHAPES.items():
        assert tuple(state[key].shape) == shape, key


def test_discriminator_keys_match_official_layout(tiny_config):
    state = MsImageDis(3, tiny_config.dis).state_dict()
    assert list(state) == EXPECTED_DIS_KEYS
    assert tuple(state["cnns.0.0.conv.weight"].shape) == (8, 3, 4, 4)
    assert tuple(state["cnns.1.1.conv.weight"].shape) == (16, 8, 4, 4)
    assert tuple(state["cnns.0.2.weight"].shape) == (1, 16, 1, 1)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # n_res 0: an MLP with no outputs
@pytest.mark.parametrize("n_downsample,n_res,activ,pad_type,channels", [
    (1, 0, "relu", "reflect", 3),
    (2, 1, "lrelu", "zero", 1),
    (1, 2, "prelu", "reflect", 1),
    (2, 2, "relu", "zero", 3),
    (2, 0, "prelu", "zero", 3),
])
def test_forward_shapes(n_downsample, n_res, activ, pad_type, channels):
    gen_cfg = {"n_downsample": n_downsample, "n_res": n_res, "activ": activ, "pad_type": pad_type}
    config = config_from_dict(tiny_config_dict(gen=gen_cfg, dis={"pad_type": pad_type}))
    torch.manual_seed(0)
    gen, dis = AdaINGen(channels, config.gen), MsImageDis(channels, config.dis)
    images = torch.rand(2, channels, 32, 32) * 2 - 1
    content, style = gen.encode(images)
    side = 32 // 2**n_downsample
    assert content.shape == (2, 8 * 2**n_downsample, side, side)
    assert style.shape == (2, 4, 1, 1)
    assert gen.dec.num_adain_params == n_res * 2 * 2 * content.shape[1]
    out = gen.decode(content, style)
    assert out.shape == images.shape
    assert torch.isfinite(out).all() and out.abs().max() <= 1  # tanh output
    scores = dis(out)
    assert [tuple(s.shape) for s in scores] == [(2, 1, 8, 8), (2, 1, 4, 4)]  # 32 -> 2 stride-2 convs; 16 -> ...


@pytest.mark.parametrize("batch", [1, 3])
def test_layernorm_matches_official_formula(batch):
    torch.manual_seed(batch)
    layer = LayerNorm(5)
    with torch.no_grad():
        layer.gamma.copy_(torch.rand(5) + 0.5)
        layer.beta.copy_(torch.randn(5))
    x = torch.randn(batch, 5, 4, 6) * 3 + 1
    flat = x.reshape(batch, -1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    std = flat.std(1, unbiased=True).view(-1, 1, 1, 1)
    expected = (x - mean) / (std + 1e-5) * layer.gamma.view(1, -1, 1, 1) + layer.beta.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_adain_matches_formula():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 5) * 2 + 0.5
    shifts, scales = torch.randn(3, 4), torch.rand(3, 4) + 0.5
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)  # biased
    expected = (x - mean) / torch.sqrt(var + 1e-5) * scales[..., None, None] + shifts[..., None, None]
    out = AdaptiveInstanceNorm2d(4)(x, torch.cat([shifts, scales], dim=1))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def _reference_decode(dec, content, adain_params):
    """Official order: walk the AdaIN layers in module order, each taking C shifts (bias), then C scales."""
    offset, x = 0, content
    for resblock in dec.model[0].model:
        residual = x
        for index, block in enumerate(resblock.model):
            x = block.conv(block.pad(x))
            c = x.shape[1]
            bias, weight = adain_params[:, offset : offset + c], adain_params[:, offset + c : offset + 2 * c]
            offset += 2 * c
            mean = x.mean(dim=(2, 3), keepdim=True)
            var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
            x = (x - mean) / torch.sqrt(var + 1e-5) * weight[..., None, None] + bias[..., None, None]
            if index == 0:
                x = F.relu(x)
        x = x + residual
    assert offset == adain_params.shape[1]
    for layer in dec.model[1:]:
        x = layer(x)
    return x


@pytest.mark.parametrize("n_res", [1, 2])
def test_decoder_consumes_adain_params_in_official_order(n_res):
    config = config_from_dict(tiny_config_dict(gen={"n_res": n_res}))
    torch.manual_seed(0)
    gen = AdaINGen(3, config.gen).eval()
    content = torch.randn(2, 32, 8, 8)
    params = torch.randn(2, gen.dec.num_adain_params)
    torch.testing.assert_close(gen.dec(content, params), _reference_decode(gen.dec, content, params),
                               atol=1e-5, rtol=1e-5)


def test_official_pytorch03_checkpoint_loads(tiny_config):
    source = make_generators(tiny_config, seed=3)["a"]
    state = dict(source.state_dict())
    # PyTorch 0.3 instance norms tracked statistics: one pair per enc_content norm layer
    norms = {"enc_content.model.0.norm": 8, "enc_content.model.1.norm": 16, "enc_content.model.2.norm": 32,
             "enc_content.model.3.model.0.model.0.norm": 32, "enc_content.model.3.model.0.model.1.norm": 32}
    for name, channels in norms.items():
        state[f"{name}.running_mean"] = torch.randn(channels)
        state[f"{name}.running_var"] = torch.rand(channels)
    target = AdaINGen(3, tiny_config.gen)
    load_state_dict_strict(target, remap(state, target), "official")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(target.eval()(images), source.eval()(images))


def test_wrong_shape_names_the_key(tiny_config):
    state = dict(AdaINGen(3, tiny_config.gen).state_dict())
    state["mlp.model.2.fc.weight"] = torch.zeros(64, 16)
    with pytest.raises(CheckpointError, match=r"mlp\.model\.2\.fc\.weight"):
        load_state_dict_strict(AdaINGen(3, tiny_config.gen), state, "bad.pt")
    del state["dec.model.5.conv.bias"]
    with pytest.raises(CheckpointError, match=r"dec\.model\.5\.conv\.bias"):
        load_state_dict_strict(AdaINGen(3, tiny_config.gen), state, "bad.pt")
