"""Text objectives: push what a CLIP/SigLIP vision tower sees toward a text prompt's embedding.

``Text("a red car")`` on a CLIP or SigLIP checkpoint: the checkpoint's own text tower embeds the
prompt once, without gradient (:func:`maco_hub.models.joint.joint_space`); every crop's image
embedding (the tower's pooled output through the vision projection, SigLIP's pooled output as it
is) is compared with it. Scores, per crop, with ``v`` the image embedding and ``t`` the normalized
text embedding:

* ``cosine_power=None`` (the default): ``cos(v, t)``, the quantity CLIP and SigLIP are trained on;
* ``cosine_power=p``: ``dot(v, t) * max(cos(v, t), 0.1) ** p`` (Lucid's direction objective), which
  also rewards a longer ``v``.

Prompts are untrusted text: a non-empty string of at most :data:`MAX_PROMPT_CHARS` characters (and
at most the text tower's context in tokens, checked by :meth:`Text.validate`); wherever they are
shown (captions, cards, the viewer, the terminal) they are escaped. Algebra works as for every
objective: ``Text("a dog") - Text("a cat")``, ``Text("a dog") + 0.5 * Channel(...)``.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .._numbers import as_finite
from ..errors import ConfigError
from ..models.joint import joint_space
from .base import Activations, Objective, Table
from .builtin import COSINE_FLOOR

if TYPE_CHECKING:
    from ..models.joint import JointSpace
    from ..models.loader import LoadedModel

MAX_PROMPT_CHARS = 1000  # CLIP reads 77 tokens, SigLIP 64: a few hundred characters at most
MAX_COSINE_POWER = 16.0


@dataclass(frozen=True)
class Text(Objective):
    """A text prompt, scored in a CLIP/SigLIP checkpoint's joint image-text space."""

    kind: ClassVar[str] = "text"
    prompt: str  # what the image should show, e.g. "a red car"
    _: KW_ONLY
    cosine_power: float | None = None  # None: cosine; p: dot * max(cos, 0.1) ** p

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", check_prompt(self.prompt))
        if self.cosine_power is not None:
            power = as_finite(self.cosine_power)
            if power is None or not 0 <= power <= MAX_COSINE_POWER:
                raise ConfigError(
                    f"cosine_power={self.cosine_power!r} is invalid: use None (cosine) or a number "
                    f"from 0 to {MAX_COSINE_POWER:g} (dot × cos^p)."
                )
            object.__setattr__(self, "cosine_power", float(power))

    @property
    def label(self) -> str:
        return self.prompt

    @property
    def description(self) -> str:
        how = "cosine" if self.cosine_power is None else f"dot × cos^{self.cosine_power:g}"
        return f"text {self.prompt!r} ({how})"

    @property
    def layers(self) -> frozenset[str]:
        space = self._bound()
        return frozenset({space.pooled_layer}) if space is not None else frozenset()

    def validate(self, loaded: LoadedModel) -> Text:
        """Loads the checkpoint's text side (once per model) and embeds the prompt."""
        space = joint_space(loaded)
        bound = Text(self.prompt, cosine_power=self.cosine_power)
        object.__setattr__(bound, "_space", space)
        object.__setattr__(bound, "_embedding", space.embed_text(self.prompt))
        return bound

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        space = self._bound()
        if space is None:
            raise ConfigError(f"{self.description} was not validated against a model; use validated().")
        image = space.image_embeddings(acts[space.pooled_layer])
        text = self._embedding.to(image.device)
        dot = image @ text
        cosine = dot / image.norm(dim=-1).clamp_min(1e-8)
        if self.cosine_power is None:
            return cosine
        return dot * cosine.clamp_min(COSINE_FLOOR) ** self.cosine_power

    def _bound(self) -> JointSpace | None:
        return self.__dict__.get("_space")


def check_prompt(prompt: Any) -> str:
    """``prompt`` if it is usable text: a string, not blank, at most :data:`MAX_PROMPT_CHARS` long."""
    if not isinstance(prompt, str):
        raise ConfigError(f"Text prompt {prompt!r} must be a string, e.g. Text('a red car').")
    if not prompt.strip():
        raise ConfigError(
            f"Text prompt {prompt!r} is blank: say what the image should show, e.g. 'a red car'."
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ConfigError(
            f"Text prompt {prompt[:40]!r}... is {len(prompt)} characters long, more than the "
            f"{MAX_PROMPT_CHARS} a prompt may have (CLIP reads 77 tokens): shorten it."
        )
    return prompt
