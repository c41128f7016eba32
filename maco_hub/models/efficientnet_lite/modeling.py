"""EfficientNet-Lite (the TF-Lite friendly EfficientNets) as a transformers model.

The Lite variants differ from EfficientNet-B*: ReLU6 instead of swish, no squeeze-and-excite,
stem (32 channels) and head (1280 channels) not scaled, first and last stages not deepened.
Convolutions use TensorFlow "SAME" padding (extra pixel at the bottom/right), computed for each
input, so any input size gives the same result as the original TF graph would.

Importing this module registers the model with the ``Auto*`` classes::

    >>> import maco_hub.models.efficientnet_lite.modeling as enl
    >>> from transformers import AutoModelForImageClassification
    >>> model = AutoModelForImageClassification.from_config(enl.EfficientNetLiteConfig.from_variant("lite0"))
    >>> [name for name, _ in model.named_modules()][:3]
    ['', 'efficientnet_lite', 'efficientnet_lite.stem']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from ...errors import ConfigError

__all__ = [
    "VARIANTS",
    "EfficientNetLiteConfig",
    "EfficientNetLiteForImageClassification",
    "EfficientNetLiteModel",
    "EfficientNetLitePreTrainedModel",
    "imagenet_labels",
    "register",
]

MODEL_TYPE = "maco_efficientnet_lite"


@dataclass(frozen=True)
class _Variant:
    """Scaling of one published EfficientNet-Lite variant."""

    width_coefficient: float  # channel multiplier of the stages
    depth_coefficient: float  # repeat multiplier of the middle stages
    image_size: int  # training and evaluation resolution in pixels
    dropout_rate: float  # dropout before the classifier


VARIANTS: dict[str, _Variant] = {
    "lite0": _Variant(1.0, 1.0, 224, 0.2),
    "lite1": _Variant(1.0, 1.1, 240, 0.2),
    "lite2": _Variant(1.1, 1.2, 260, 0.3),
    "lite3": _Variant(1.2, 1.4, 280, 0.3),
    "lite4": _Variant(1.4, 1.8, 300, 0.3),
}


@strict
class EfficientNetLiteConfig(PreTrainedConfig):
    """Architecture of an EfficientNet-Lite; defaults give Lite0 with 1000 classes.

    Stage lists hold the unscaled (Lite0) values; ``width_coefficient`` and ``depth_coefficient``
    scale them as the reference builder does. Use :meth:`from_variant` for Lite0-Lite4.
    """

    model_type = MODEL_TYPE

    num_channels: int = 3  # input colour channels
    image_size: int = 224  # resolution the weights were trained at (other sizes also run)
    width_coefficient: float = 1.0  # channel multiplier of the stages (stem and head fixed)
    depth_coefficient: float = 1.0  # repeat multiplier (first and last stages fixed)
    depth_divisor: int = 8  # scaled channel counts are rounded to multiples of this
    stem_channels: int = 32  # output channels of the stem convolution
    head_channels: int = 1280  # output channels of the 1x1 head convolution
    kernel_sizes: list[int] | tuple[int, ...] = (3, 3, 5, 3, 5, 5, 3)  # depthwise kernel per stage
    strides: list[int] | tuple[int, ...] = (1, 2, 2, 2, 1, 2, 1)  # stride of each stage's first block
    expand_ratios: list[int] | tuple[int, ...] = (1, 6, 6, 6, 6, 6, 6)  # inverted-bottleneck ratio
    out_channels: list[int] | tuple[int, ...] = (16, 24, 40, 80, 112, 192, 320)  # before scaling
    num_block_repeats: list[int] | tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)  # before scaling
    hidden_act: str = "relu6"  # activation after every convolution but the projections
    batch_norm_eps: float = 1e-3  # BatchNorm epsilon of the TF weights
    batch_norm_momentum: float = 0.01  # PyTorch convention (TF decay 0.99)
    dropout_rate: float = 0.2  # dropout before the classifier (training only)
    drop_connect_rate: float = 0.2  # stochastic depth, grows linearly to this over the blocks
    initializer_range: float = 0.02  # std of the classifier's initial weights

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        stage_lists = ("kernel_sizes", "strides", "expand_ratios", "out_channels", "num_block_repeats")
        lengths = {name: len(getattr(self, name)) for name in stage_lists}
        if len(set(lengths.values())) != 1 or not lengths["out_channels"]:
            raise ConfigError(
                f"EfficientNetLiteConfig stage lists must have one equal, non-zero "
                f"length; got lengths {lengths}."
            )
        if self.hidden_act not in ACT2FN:
            raise ConfigError(
                f"EfficientNetLiteConfig hidden_act={self.hidden_act!r} is unknown; "
                f"use one of transformers' activations such as 'relu6'."
            )
        if self.width_coefficient <= 0 or self.depth_coefficient <= 0:
            raise ConfigError(
                f"EfficientNetLiteConfig width_coefficient={self.width_coefficient!r} and "
                f"depth_coefficient={self.depth_coefficient!r} must be positive."
            )

    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> EfficientNetLiteConfig:
        """The configuration of a published variant (``"lite0"`` ... ``"lite4"``)."""
        if variant not in VARIANTS:
            raise ConfigError(
                f"Unknown EfficientNet-Lite variant {variant!r}; choose one of {sorted(VARIANTS)}."
            )
        scaling = VARIANTS[variant]
        defaults = {
            "width_coefficient": scaling.width_coefficient,
            "depth_coefficient": scaling.depth_coefficient,
            "image_size": scaling.image_size,
            "dropout_rate": scaling.dropout_rate,
        }
        return cls(**{**defaults, **kwargs})


@dataclass(frozen=True)
class _StageSpec:
    """One stage after width and depth scaling."""

    in_channels: int  # channels entering the first block
    out_channels: int  # channels leaving every block
    num_blocks: int  # blocks in the stage
    kernel_size: int  # depthwise kernel
    stride: int  # stride of the first block; the others use 1
    expand_ratio: int  # hidden channels = in_channels * expand_ratio


def _round_channels(channels: int, config: EfficientNetLiteConfig) -> int:
    """Scale a channel count by the width coefficient, rounding to the divisor (never -10%)."""
    divisor = config.depth_divisor
    scaled = channels * config.width_coefficient
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def _stage_specs(config: EfficientNetLiteConfig) -> list[_StageSpec]:
    """Scale the stage lists; the first and last stages keep their depth (Lite rule)."""
    specs = []
    in_channels = config.stem_channels
    last = len(config.out_channels) - 1
    for index, (kernel, stride, expand, out, repeats) in enumerate(
        zip(
            config.kernel_sizes,
            config.strides,
            config.expand_ratios,
            config.out_channels,
            config.num_block_repeats,
            strict=True,
        )
    ):
        if index not in (0, last):
            repeats = math.ceil(config.depth_coefficient * repeats)
        out_channels = _round_channels(out, config)
        specs.append(_StageSpec(in_channels, out_channels, repeats, kernel, stride, expand))
        in_channels = out_channels
    return specs


class _SameConv2d(nn.Conv2d):
    """Bias-free Conv2d with TensorFlow "SAME" padding: output size = ceil(input / stride)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1
    ) -> None:
        # Stride 1 with an odd kernel pads symmetrically, which nn.Conv2d does by itself.
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            groups=groups,
            bias=False,
            padding=kernel_size // 2 if symmetric else 0,
        )
        self._dynamic = not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic:
            pads = []
            for size, kernel, stride in zip(
                x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
            ):
                total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class _ConvNormAct(nn.Module):
    """SAME convolution, BatchNorm, then the activation (or none)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        config: EfficientNetLiteConfig,
        *,
        stride: int = 1,
        groups: int = 1,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.conv = _SameConv2d(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        self.bn = nn.BatchNorm2d(out_channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.act = ACT2FN[config.hidden_act] if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class EfficientNetLiteBlock(nn.Module):
    """Inverted bottleneck: 1x1 expand, depthwise, 1x1 project; residual when shapes allow."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        config: EfficientNetLiteConfig,
        *,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        drop_path_rate: float,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = _ConvNormAct(in_channels, hidden, 1, config) if expand_ratio != 1 else None
        self.depthwise = _ConvNormAct(hidden, hidden, kernel_size, config, stride=stride, groups=hidden)
        self.project = _ConvNormAct(hidden, out_channels, 1, config, activation=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        if not self.residual:
            return out
        if self.training and self.drop_path_rate > 0:
            keep = 1.0 - self.drop_path_rate
            mask = torch.empty(out.shape[0], 1, 1, 1, device=out.device, dtype=out.dtype)
            out = out * mask.bernoulli_(keep) / keep
        return out + x


class EfficientNetLiteStage(nn.Module):
    """Blocks at one resolution; the first may change stride and width."""

    def __init__(
        self, spec: _StageSpec, config: EfficientNetLiteConfig, drop_path_rates: list[float]
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            EfficientNetLiteBlock(
                spec.in_channels if i == 0 else spec.out_channels,
                spec.out_channels,
                config,
                kernel_size=spec.kernel_size,
                stride=spec.stride if i == 0 else 1,
                expand_ratio=spec.expand_ratio,
                drop_path_rate=rate,
            )
            for i, rate in enumerate(drop_path_rates)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class EfficientNetLitePreTrainedModel(PreTrainedModel):
    """Weight initialization and loading shared by the EfficientNet-Lite models."""

    config_class = EfficientNetLiteConfig
    config: EfficientNetLiteConfig
    base_model_prefix = "efficientnet_lite"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ("EfficientNetLiteBlock",)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        else:
            super()._init_weights(module)


class EfficientNetLiteModel(EfficientNetLitePreTrainedModel):
    """The backbone: stem, stages, 1x1 head and global average pooling."""

    def __init__(self, config: EfficientNetLiteConfig) -> None:
        super().__init__(config)
        specs = _stage_specs(config)
        self.stem = _ConvNormAct(config.num_channels, config.stem_channels, 3, config, stride=2)
        total = sum(spec.num_blocks for spec in specs)
        self.stages = nn.ModuleList()
        start = 0
        for spec in specs:
            rates = [config.drop_connect_rate * (start + i) / total for i in range(spec.num_blocks)]
            self.stages.append(EfficientNetLiteStage(spec, config, rates))
            start += spec.num_blocks
        self.head = _ConvNormAct(specs[-1].out_channels, config.head_channels, 1, config)
        self.pooler = nn.AdaptiveAvgPool2d(1)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        """``hidden_states``: the stem output, then each stage's output."""
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        return_dict = self.config.return_dict if return_dict is None else return_dict
        x = self.stem(pixel_values)
        hidden_states = [x]
        for stage in self.stages:
            x = stage(x)
            hidden_states.append(x)
        last_hidden_state = self.head(x)
        pooled = self.pooler(last_hidden_state).flatten(1)
        states = tuple(hidden_states) if output_hidden_states else None
        if not return_dict:
            return tuple(v for v in (last_hidden_state, pooled, states) if v is not None)
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=last_hidden_state, pooler_output=pooled, hidden_states=states
        )


class EfficientNetLiteForImageClassification(EfficientNetLitePreTrainedModel):
    """The backbone with dropout and a linear classifier on the pooled features."""

    def __init__(self, config: EfficientNetLiteConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.efficientnet_lite = EfficientNetLiteModel(config)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.classifier = (
            nn.Linear(config.head_channels, config.num_labels) if config.num_labels > 0 else nn.Identity()
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention | tuple:
        """Logits for each class; ``loss`` too when ``labels`` are given."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.efficientnet_lite(
            pixel_values, output_hidden_states=output_hidden_states, return_dict=True
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        if not return_dict:
            rest = (outputs.hidden_states,) if outputs.hidden_states is not None else ()
            return ((loss,) if loss is not None else ()) + (logits, *rest)
        return ImageClassifierOutputWithNoAttention(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states
        )


def register() -> None:
    """Make ``AutoConfig``/``AutoModel``/``AutoModelForImageClassification`` know the model.

    Safe to call more than once.
    """
    AutoConfig.register(MODEL_TYPE, EfficientNetLiteConfig, exist_ok=True)
    AutoModel.register(EfficientNetLiteConfig, EfficientNetLiteModel, exist_ok=True)
    AutoModelForImageClassification.register(
        EfficientNetLiteConfig, EfficientNetLiteForImageClassification, exist_ok=True
    )


@cache
def _read_labels() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("imagenet_labels.txt").read_text("utf-8")
    return tuple(line for line in text.splitlines() if line)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order (synonyms comma-separated)."""
    return list(_read_labels())


register()
