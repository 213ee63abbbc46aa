"""Small built-in models for the digits tasks: ResNet-20, a tiny CNN and a tiny MobileNetV2.

Everything downstream (graph analysis, quantizer names, NNCF-style scopes, elastic search) keys on
module names, so the names here are part of the public contract: plain, stable, one module
instance per use site (a ReLU is never shared), and every forward is ``torch.fx`` traceable
(residual adds are written ``out = out + identity``, no data-dependent control flow).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor, nn

from searchq.errors import TaskError

__all__ = [
    "BasicBlock",
    "InvertedResidual",
    "MobileNetV2Tiny",
    "ResNet",
    "TinyCNN",
    "init_weights",
    "mbv2_tiny",
    "resnet20",
    "tiny_cnn",
]


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (He et al., 2016, CIFAR variant).

    The shortcut is ``downsample`` (1x1 conv + BN, "option B") when the shape changes, else the
    identity; ``downsample`` is ``None`` in the identity case so the block has no dummy modules.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu2 = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + identity
        return self.relu2(out)


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, three stages of BasicBlocks, global average pool, Linear."""

    def __init__(
        self,
        blocks_per_stage: Sequence[int] = (3, 3, 3),
        width: Sequence[int] = (16, 32, 64),
        num_classes: int = 10,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if len(blocks_per_stage) != 3 or len(width) != 3:
            raise TaskError(
                f"ResNet needs 3 stages, got blocks_per_stage={tuple(blocks_per_stage)} and "
                f"width={tuple(width)}; pass 3 values for each"
            )
        self.conv1 = nn.Conv2d(in_channels, width[0], 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width[0])
        self.relu = nn.ReLU(inplace=False)
        channels = width[0]
        stages = []
        for stage, (n_blocks, out_channels) in enumerate(zip(blocks_per_stage, width, strict=True)):
            stride = 1 if stage == 0 else 2
            blocks = []
            for i in range(n_blocks):
                blocks.append(BasicBlock(channels, out_channels, stride if i == 0 else 1))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


class TinyCNN(nn.Module):
    """Three conv + BN + ReLU layers and a Linear head (~3.8k parameters); a fast test model."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(8, 16, 3, 2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv3 = nn.Conv2d(16, 16, 3, 2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.relu3 = nn.ReLU(inplace=False)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.fc(self.flatten(self.avgpool(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block (Sandler et al., 2018): 1x1 expand -> depthwise kxk -> 1x1 project.

    Unlike MobileNetV2 every block expands (no ``t = 1`` special case), so all blocks share one
    layout: ``conv.0`` expand conv, ``conv.3`` depthwise conv, ``conv.6`` project conv (each
    followed by its BN; ReLU6 after the first two, none after the projection — linear bottleneck).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        expand_ratio: int,
        kernel_size: int,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=False),
            nn.Conv2d(
                hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden, bias=False
            ),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=False),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        if self.use_residual:
            out = out + x
        return out


# (out_channels, stride, kernel_size) per block; large depthwise kernels leave room for an
# elastic-kernel search to pick the centred 3x3 / 5x5 sub-kernels.
_MBV2_TINY_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (16, 1, 5),
    (24, 2, 5),
    (24, 1, 7),
    (32, 2, 5),
    (32, 1, 7),
)


class MobileNetV2Tiny(nn.Module):
    """A 5-block MobileNetV2 for 8x8 inputs: stem, ``features.0..4``, pool, ``fc``."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        *,
        blocks: Sequence[tuple[int, int, int]] = _MBV2_TINY_BLOCKS,
        stem_channels: int = 16,
        expand_ratio: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, 1, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU6(inplace=False),
        )
        layers = []
        channels = stem_channels
        for out_channels, stride, kernel_size in blocks:
            layers.append(
                InvertedResidual(
                    channels,
                    out_channels,
                    stride=stride,
                    expand_ratio=expand_ratio,
                    kernel_size=kernel_size,
                )
            )
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.stem(x))
        return self.fc(self.flatten(self.avgpool(x)))


@torch.no_grad()
def init_weights(model: nn.Module, *, generator: torch.Generator) -> nn.Module:
    """Re-initialise every Conv/Linear/BN of ``model`` from ``generator`` (same seed, same weights).

    Convs get Kaiming-normal (fan_out, ReLU) as in torchvision's ResNet; Linear layers keep
    PyTorch's default distribution but drawn from ``generator``; BN starts at identity with fresh
    running stats. The last BN of each residual branch starts at zero (Goyal et al., 2017) so
    every block begins as the identity, which lets these nets train in a few epochs.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(
                module.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.in_features)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in model.modules():
        last_bn: nn.BatchNorm2d | None = None
        if isinstance(module, BasicBlock):
            last_bn = module.bn2
        elif isinstance(module, InvertedResidual) and module.use_residual:
            bn = module.conv[-1]
            assert isinstance(bn, nn.BatchNorm2d)
            last_bn = bn
        if last_bn is not None:
            nn.init.zeros_(last_bn.weight)
    return model


M = TypeVar("M", bound=nn.Module)


def _build(make: Callable[[], M], generator: torch.Generator | None) -> M:
    if generator is None:
        return make()
    # The layers' own reset_parameters() draw from the global RNG; fork_rng hands that state
    # back untouched, and init_weights then overwrites every draw from ``generator``.
    with torch.random.fork_rng(devices=[]):
        model = make()
    init_weights(model, generator=generator)
    return model


def resnet20(
    num_classes: int = 10,
    in_channels: int = 1,
    width: Sequence[int] = (16, 32, 64),
    *,
    generator: torch.Generator | None = None,
) -> ResNet:
    """ResNet-20 (3 stages x 3 BasicBlocks, ~0.27 M parameters at the default width).

    With ``generator`` the weights are drawn from it (:func:`init_weights`) and the global RNG is
    left untouched; without, PyTorch's default initialisation (global RNG) is kept.
    """
    return _build(
        lambda: ResNet((3, 3, 3), tuple(width), num_classes=num_classes, in_channels=in_channels),
        generator,
    )


def tiny_cnn(
    num_classes: int = 10, in_channels: int = 1, *, generator: torch.Generator | None = None
) -> TinyCNN:
    """A three-conv CNN with a few thousand parameters (see :func:`resnet20` for ``generator``)."""
    return _build(lambda: TinyCNN(num_classes=num_classes, in_channels=in_channels), generator)


def mbv2_tiny(
    num_classes: int = 10, in_channels: int = 1, *, generator: torch.Generator | None = None
) -> MobileNetV2Tiny:
    """A 5-block MobileNetV2 with 5x5 / 7x7 depthwise kernels (see :func:`resnet20`)."""
    return _build(
        lambda: MobileNetV2Tiny(num_classes=num_classes, in_channels=in_channels), generator
    )
