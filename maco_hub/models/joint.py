"""The text side of a CLIP/SigLIP-style checkpoint, for text objectives (:class:`maco_hub.objectives.Text`).

A dual checkpoint loads as its vision tower only (:mod:`maco_hub.models.checkpoints`). What a text
objective needs besides is loaded on first use, once per loaded model, by :func:`joint_space`, from
the checkpoint the tower came from (the same folder, unchanged, or the same Hub commit): the text
tower with its projection, the tokenizer, and the vision projection into the joint space (CLIP's
``visual_projection``; SigLIP has none, its pooled vision output is the image embedding). Before
anything is built, every configuration file of the checkpoint, the tokenizer's included, is checked
for code of its own (:func:`~maco_hub.models.checkpoints.refuse_remote_code`), and transformers gets
``trust_remote_code`` explicitly.

Image embeddings are read at the tower module whose output *is* the tower's ``pooler_output``
(``post_layernorm`` for CLIP, ``head`` for SigLIP), found by one dry forward pass.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError, ModelLoadError, NoTextTowerError
from .checkpoints import CheckpointSource, _from_pretrained, _raw_config, refuse_remote_code
from .hooks import first_tensor
from .placement import blank_pixels

if TYPE_CHECKING:
    from .loader import LoadedModel

TEXT_FAMILIES = {"clip": "longest", "siglip": "max_length"}
"""``model_type`` of a checkpoint text objectives support -> the padding its text tower was trained with."""
EXAMPLES = "openai/clip-vit-base-patch32 or google/siglip-base-patch16-224"
_SPACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class JointSpace:
    """The text tower, tokenizer and projections of one checkpoint; text embedded once, no gradient."""

    def __init__(self, model_id: str, family: str, pooled_layer: str, parts: dict, tokenizer: Any) -> None:
        self.model_id = model_id
        self.family = family  # a key of TEXT_FAMILIES
        self.pooled_layer = pooled_layer  # the vision tower's module whose output is its pooled output
        self._text_model = parts["text_model"]
        self._text_projection = parts.get("text_projection")
        self._visual_projection = parts.get("visual_projection")
        self._tokenizer = tokenizer
        self._positions = int(parts["positions"])
        self._texts: dict[str, torch.Tensor] = {}
        self._weights: dict[torch.device, torch.Tensor] = {}

    def embed_text(self, prompt: str) -> torch.Tensor:
        """The L2-normalized, projected embedding (float32, CPU) of ``prompt``, computed once."""
        if prompt not in self._texts:
            inputs = self._tokens(prompt)
            with torch.no_grad():
                pooled = self._text_model(**inputs).pooler_output
                if self._text_projection is not None:
                    pooled = self._text_projection(pooled)
            self._texts[prompt] = nn.functional.normalize(pooled[0].float(), dim=0)
        return self._texts[prompt]

    def image_embeddings(self, pooled: torch.Tensor) -> torch.Tensor:
        """Projected image embeddings (N, D), not normalized, from the pooled layer's output (N, H)."""
        pooled = pooled.float()
        if self._visual_projection is None:
            return pooled
        weight = self._weights.get(pooled.device)
        if weight is None:
            weight = self._visual_projection.weight.detach().float().to(pooled.device)
            self._weights[pooled.device] = weight
        return pooled @ weight.T

    def _tokens(self, prompt: str) -> dict[str, torch.Tensor]:
        padding = TEXT_FAMILIES[self.family]
        options = {"max_length": self._positions} if padding == "max_length" else {}
        encoded = self._tokenizer([prompt], padding=padding, truncation=False, return_tensors="pt", **options)
        count = int(encoded["input_ids"].shape[1])
        if count > self._positions:
            raise ConfigError(
                f"Text prompt {prompt[:60]!r}{'...' if len(prompt) > 60 else ''} is {count} tokens long; "
                f"the text tower of {self.model_id!r} reads at most {self._positions}: shorten it."
            )
        return {k: encoded[k] for k in ("input_ids", "attention_mask") if k in encoded}


def joint_space(loaded: LoadedModel) -> JointSpace:
    """The :class:`JointSpace` of ``loaded``'s checkpoint, loaded on first use (cached per model).

    :class:`~maco_hub.errors.NoTextTowerError` for a model without a CLIP/SigLIP text tower."""
    source = loaded.checkpoint
    if source is None:
        raise NoTextTowerError(
            f"Model {loaded.model_id!r} was passed as a module, so its text tower is unknown: text "
            f"objectives need a CLIP or SigLIP checkpoint by name, e.g. {EXAMPLES}."
        )
    cached = _SPACES.get(loaded.module)
    if cached is None or cached[0] != source:
        cached = source, _load(loaded, source)
        _SPACES[loaded.module] = cached
    return cached[1]


def _load(loaded: LoadedModel, source: CheckpointSource) -> JointSpace:
    family = _family(loaded, source)
    if source.fingerprint is not None:
        from .loader import folder_fingerprint

        if folder_fingerprint(source.name) != source.fingerprint:
            raise ModelLoadError(
                f"Model folder {loaded.model_id!r} changed since its vision tower was loaded; "
                "load the model again so that both towers come from the same weights."
            )
    trust = source.trust_remote_code
    if not trust:
        refuse_remote_code(source.name, dict(source.hub))  # config files, the tokenizer's included
    hub = {**source.hub, "trust_remote_code": bool(trust)}  # explicit: transformers never prompts
    parts = _text_parts(loaded, source.name, hub)
    tokenizer = _tokenizer(loaded, source.name, hub)
    _check_vocabulary(loaded, tokenizer, parts["vocabulary"])
    return JointSpace(loaded.model_id, family, pooled_layer(loaded), parts, tokenizer)


def _family(loaded: LoadedModel, source: CheckpointSource) -> str:
    raw = _raw_config(source.name, dict(source.hub))
    model_type = str(raw.get("model_type"))
    if model_type in TEXT_FAMILIES and raw.get("text_config") is not None:
        return model_type
    what = (
        f"holds only a vision tower ({model_type})"
        if raw.get("text_config") is None and ("clip" in model_type or "siglip" in model_type)
        else f"is a {model_type!r} model without a CLIP/SigLIP text tower"
    )
    raise NoTextTowerError(
        f"Model {loaded.model_id!r} {what}: text objectives need a CLIP or SigLIP checkpoint with "
        f"its text tower (model_type {' or '.join(TEXT_FAMILIES)}), e.g. {EXAMPLES}."
    )


def _text_parts(loaded: LoadedModel, name: str, hub: dict) -> dict[str, Any]:
    """The text tower, its projection and the vision projection of the full checkpoint (its vision
    tower, loaded again here, is dropped)."""
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(name, **hub)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"Could not read the config of {loaded.model_id!r}: {exc}") from exc
    full, _ = _from_pretrained(AutoModel, name, {**hub, "dtype": torch.float32}, config)
    text_config = config.text_config
    parts: dict[str, Any] = {
        "positions": text_config.max_position_embeddings,
        "vocabulary": text_config.vocab_size,
    }
    for part in ("text_model", "text_projection", "visual_projection"):
        module = getattr(full, part, None)
        if isinstance(module, nn.Module):
            parts[part] = module.eval().requires_grad_(False)
    if "text_model" not in parts:
        raise NoTextTowerError(f"Model {loaded.model_id!r} loads without a text tower; use e.g. {EXAMPLES}.")
    return parts


def _tokenizer(loaded: LoadedModel, name: str, hub: dict) -> Any:
    from transformers import AutoTokenizer

    options = {k: v for k, v in hub.items() if k in ("cache_dir", "revision", "token", "local_files_only")}
    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=hub["trust_remote_code"], **options)
    except Exception as exc:  # tokenizers, sentencepiece and transformers each raise their own kinds
        first_line = str(exc).strip().split("\n")[0][:160]
        raise ModelLoadError(
            f"Could not load the tokenizer of {loaded.model_id!r} ({type(exc).__name__}: {first_line}). "
            "A text objective needs the checkpoint's tokenizer files (tokenizer.json, or vocab.json "
            "and merges.txt; SigLIP's spiece.model also needs `pip install sentencepiece`)."
        ) from exc


def _check_vocabulary(loaded: LoadedModel, tokenizer: Any, size: int) -> None:
    """A tokenizer with words (transformers builds one of special tokens only when the files are
    missing) and no id beyond the text tower's embedding table."""
    count = len(tokenizer)
    if count <= len(set(tokenizer.all_special_tokens)):
        raise ModelLoadError(
            f"The tokenizer of {loaded.model_id!r} has no vocabulary ({count} special tokens only): the "
            "checkpoint lacks its tokenizer files (tokenizer.json, or vocab.json and merges.txt); "
            "download the full checkpoint again."
        )
    if count > size:
        raise ModelLoadError(
            f"The tokenizer of {loaded.model_id!r} has {count} tokens but its text tower embeds "
            f"{size}: the tokenizer files belong to another model; download the checkpoint again."
        )


def pooled_layer(loaded: LoadedModel) -> str:
    """The name of the vision tower's module whose output is the tower's ``pooler_output``."""
    module = loaded.module
    outputs: list[tuple[str, torch.Tensor]] = []  # kept alive, so no two share an id
    handles = []

    def hook(name: str):
        def record(mod: nn.Module, inputs: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                outputs.append((name, tensor))

        return record

    try:
        for name, sub in module.named_modules():
            if name:
                handles.append(sub.register_forward_hook(hook(name)))
        with torch.no_grad():
            output = loaded.forward(blank_pixels(module, loaded.preprocessing.size))
        pooled = getattr(output, "pooler_output", None)
        name = next((n for n, tensor in outputs if tensor is pooled), None)
    finally:
        for handle in handles:
            handle.remove()
    if name is None:
        raise NoTextTowerError(
            f"The vision tower of {loaded.model_id!r} gives no pooled output to compare with a text; "
            f"use e.g. {EXAMPLES}."
        )
    return name
