"""GE, Gather-Excite (Hu, Shen, Albanie, Sun & Vedaldi, NeurIPS 2018), after hujie-frank/GENet.

The official code is three Caffe prototxts, all with a global extent: RN50-GEPF (GE-θ⁻: global average
pool, sigmoid), RN50-GEP (GE-θ: depthwise conv whose kernel is the whole map, BN, sigmoid) and RN50-GEPP
(GE-θ+: the GE-θ gather, BN, ReLU, then a 1x1 down (C/16) / ReLU / 1x1 up excite MLP, sigmoid). The
extents 2, 4 and 8 of the paper follow timm's port (`timm/layers/gather_excite.py`): parameter-free
average pooling with kernel 2e-1 and stride e, or log2(e) stride-2 depthwise 3x3 convs with BN and ReLU
between them, then nearest-neighbour upsampling of the gate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from blocks._common import Conv2d
from blocks.registry import BlockError, boolean, is_int, register

#: side of the learned kernel of the parametric global gather (ResNet-50's conv5 map, where GE-θ's
#: official kernel is 7x7); it is resampled to each input's size, see GlobalDepthwiseGather.
GATHER_REF = 7
#: reduction of the excite MLP (official GEPP: 256 -> 16, 2048 -> 128)
EXCITE_REDUCTION = 16


class _GatherNorm(nn.BatchNorm2d):
    """BatchNorm2d that falls back to its running statistics when a training batch holds one value per
    channel (batch 1 on a 1x1 gather output, e.g. YOLOv5's stride probe), where batch statistics do not
    exist."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                self.eps)
        return super().forward(x)


class GlobalDepthwiseGather(nn.Module):
    """GE-θ's global gather without a fixed input size: a depthwise weighted sum over the whole map.

    The official gather is a depthwise conv whose kernel equals the feature map, so it only runs at one
    resolution. Here the kernel is learned on a GATHER_REF x GATHER_REF grid, bilinearly resampled to the
    input's H x W and multiplied by GATHER_REF² / (H·W) so the sum keeps its magnitude (it integrates the
    same weight surface at any resolution). At a 7x7 input this is exactly the official op with the same
    C·49 parameters (msra init, no bias).
    """

    def __init__(self, channels: int, ref: int = GATHER_REF) -> None:
        super().__init__()
        self.ref = ref
        self.weight = nn.Parameter(torch.empty(channels, 1, ref, ref))
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")  # Caffe "msra"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        weight = self.weight
        if (h, w) != (self.ref, self.ref):
            weight = F.interpolate(weight, size=(h, w), mode="bilinear", align_corners=False)
            weight = weight * (self.ref * self.ref / (h * w))
        # the depthwise conv with a whole-map kernel, written as per-channel dot products (same numbers
        # and FLOPs, much faster on CPU than a conv with an H x W kernel)
        return torch.einsum("bchw,chw->bc", x, weight[:, 0].to(x.dtype))[:, :, None, None]


def check(channels: int, hp: dict[str, Any]) -> None:
    """extent: 'global', 2, 4 or 8; param_gather and excite_mlp: booleans."""
    e = hp["extent"]
    if not (e == "global" or (is_int(e) and e in (2, 4, 8))):
        raise BlockError(f"GE: extent={e!r} is not supported; use 'global', 2, 4 or 8")
    boolean("GE", "param_gather", hp["param_gather"])
    boolean("GE", "excite_mlp", hp["excite_mlp"])


@register("GE", choices={"extent": ["global", 2, 4, 8], "param_gather": [False, True], "excite_mlp": [False, True]},
          check=check, aliases=["GatherExcite"],
          summary="Gather-Excite (Hu et al., NeurIPS 2018): GE-θ⁻ / GE-θ / GE-θ+ context gate")
class GE(nn.Module):
    """Gather-Excite: gate every channel and position by a sigmoid of context gathered over `extent`.

    `extent="global"` gathers over the whole map (one gate per channel); 2, 4, 8 gather over that many
    pixels per side and upsample the gate (nearest). `param_gather` turns average pooling into learned
    depthwise convs + BN (GE-θ); `excite_mlp` adds the 1x1 down/up MLP (GE-θ+ when both are on). Returns
    x * gate, like the official Axpy before its residual add.
    """

    def __init__(self, channels: int, extent: str | int = "global", param_gather: bool = True,
                 excite_mlp: bool = True) -> None:
        super().__init__()
        if extent != "global" and extent not in (2, 4, 8):
            raise ValueError(f"GE: extent={extent!r} must be 'global', 2, 4 or 8")
        self.channels = channels
        self.extent = extent
        self.param_gather = bool(param_gather)
        self.excite_mlp = bool(excite_mlp)
        self.gather: nn.Module | None = None
        if self.param_gather:
            if extent == "global":
                self.gather = nn.Sequential(GlobalDepthwiseGather(channels), _GatherNorm(channels))
            else:
                layers: list[nn.Module] = []
                n = int(math.log2(extent))
                for i in range(n):
                    conv = Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False)
                    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
                    layers += [conv, _GatherNorm(channels)]
                    if i < n - 1:
                        layers.append(nn.ReLU(inplace=True))
                self.gather = nn.Sequential(*layers)
        self.mlp: nn.Module | None = None
        if self.excite_mlp:
            hidden = max(channels // EXCITE_REDUCTION, 1)
            # the official GE-θ+ has a ReLU between the parametric gather's BN and the MLP
            pre = [nn.ReLU(inplace=True)] if self.param_gather else []
            self.mlp = nn.Sequential(*pre, nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(hidden, channels, 1))
            for m in self.mlp:
                if isinstance(m, nn.Conv2d):  # Caffe gaussian std 0.01, bias 0
                    nn.init.normal_(m.weight, std=0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gather is not None:
            g = self.gather(x)
        elif self.extent == "global":
            g = x.mean(dim=(2, 3), keepdim=True)
        else:
            e = int(self.extent)
            g = F.avg_pool2d(x, kernel_size=2 * e - 1, stride=e, padding=e - 1, count_include_pad=False)
        if self.mlp is not None:
            g = self.mlp(g)
        gate = torch.sigmoid(g)
        if gate.shape[-2:] != x.shape[-2:] and gate.shape[-2:] != (1, 1):
            gate = F.interpolate(gate, size=x.shape[-2:], mode="nearest")
        return x * gate.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, extent={self.extent!r}, param_gather={self.param_gather}, "
                f"excite_mlp={self.excite_mlp}")
