"""VGG16 relu5_3 features for MUNIT's optional domain-invariant perceptual loss (`vgg_w > 0`).

Weights come only from a local file named by `vgg_model_path`; nothing is ever downloaded. Two layouts
are accepted, loaded with `weights_only=True`:

  torchvision  `torchvision.models.vgg16().state_dict()` (keys `features.N.*`, RGB input normalised with
               the ImageNet mean/std; the classifier keys are ignored)
  official     NVlabs/MUNIT's `vgg16.weight` converted from the Caffe/Lua model (keys `conv1_1.*` ...
               `conv5_3.*`, BGR input in 0..255 minus the Caffe channel means). A directory holding
               `vgg16.weight` is accepted too, as the official `load_vgg16(model_dir)` does.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from munit_rt.training.checkpoint import torch_load
from munit_rt.training.errors import CheckpointError, ConfigError

# channels per conv layer; "M" = 2x2 max pool (torchvision `cfgs["D"]`, cut after relu5_3)
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_OFFICIAL_NAMES = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                   "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.680)


class Vgg16Relu53(nn.Module):
    """VGG16 convolutional trunk up to relu5_3, with torchvision's `features.N` indices."""

    def __init__(self, input_layout: str = "torchvision"):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, 1, 1), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.input_layout = input_layout

    def conv_indices(self) -> list[int]:
        return [i for i, layer in enumerate(self.features) if isinstance(layer, nn.Conv2d)]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Generator output in [-1, 1] (1 or 3 channels) -> what the loaded weights were trained on."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if self.input_layout == "official":
            bgr = images.flip(1)
            mean = images.new_tensor(_CAFFE_MEAN_BGR).view(1, 3, 1, 1)
            return (bgr + 1) * 127.5 - mean
        mean = images.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = images.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        return ((images + 1) * 0.5 - mean) / std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(self.preprocess(images))


def load_vgg16(path: str | Path | None) -> Vgg16Relu53:
    """Build the frozen, eval-mode feature extractor from a local weights file (see module docstring)."""
    if not path:
        raise ConfigError("vgg_w > 0 needs 'vgg_model_path': a local VGG16 state dict (never downloaded)")
    path = Path(path)
    if path.is_dir():
        path = path / "vgg16.weight"
    if not path.is_file():
        raise ConfigError(f"vgg_model_path: {path}: no such file (a local torchvision or official VGG16 "
                          "state dict; munit-rt never downloads weights)")
    try:
        state = torch_load(path)
    except CheckpointError as exc:
        raise ConfigError(f"vgg_model_path: {exc}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"vgg_model_path: {path}: not a state dict")
    model = Vgg16Relu53()
    conv_indices = model.conv_indices()
    if "conv1_1.weight" in state:
        model.input_layout = "official"
        renames = {f"{name}.{leaf}": f"features.{index}.{leaf}"
                   for name, index in zip(_OFFICIAL_NAMES, conv_indices) for leaf in ("weight", "bias")}
    else:
        renames = {f"features.{index}.{leaf}": f"features.{index}.{leaf}"
                   for index in conv_indices for leaf in ("weight", "bias")}
    missing = [key for key in renames if key not in state]
    if missing:
        raise ConfigError(f"vgg_model_path: {path}: not a VGG16 state dict (missing '{missing[0]}')")
    features = {new: state[old] for old, new in renames.items()}
    for key, tensor in model.state_dict().items():
        if tuple(features[key].shape) != tuple(tensor.shape):
            raise ConfigError(f"vgg_model_path: {path}: tensor for '{key}' has shape "
                              f"{list(features[key].shape)}, VGG16 expects {list(tensor.shape)}")
    model.load_state_dict(features, strict=True)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model
