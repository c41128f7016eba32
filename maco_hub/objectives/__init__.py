"""What a visualization maximizes: the objectives users build, and the ``"layer:unit"`` parser.

Every objective is a frozen dataclass with a readable ``description`` (a gallery caption).
``a + b``, ``a - b``, ``2 * a``, ``-a`` and ``a / 2`` return new :class:`Sum` objects; operands
never change. ``objective.validate(loaded)`` checks it against a loaded model and returns the
resolved copy (class names turned into indices, layer kinds and default positions filled in);
``objective.score(acts, logits, table)`` gives the per-image score to maximize. The base class and
its algebra are in :mod:`maco_hub.objectives.base`, the checks in :mod:`maco_hub.objectives.checks`.

Reductions over a layer output (N, C, H, W), (N, T, D) or (N, D):

* :class:`Channel`: mean of one unit over space, or over the chosen tokens (``"all"``,
  ``"patch"``: the tokens after the CLS/register prefix, ``"cls"``: token 0 only).
* :class:`Neuron`: one unit at one position (y, x) or one token; default: the centre (the centre
  patch token for token layers).
* :class:`LayerEnergy` (kind ``"layer"``): mean squared activation of the whole layer output.
* :class:`Direction`: at each position / chosen token, ``dot(a, v) * max(cos(a, v), 0.1) ** p``,
  averaged. The cosine is clamped at 0.1 (Lucid's floor) so any power p, fractional included, is
  defined (no NaN) and anti-aligned activations are never rewarded; ``p = 0`` is the plain dot.

Objectives that look at a given image (:mod:`maco_hub.objectives.guided`): :class:`Inversion`
(feature inversion: the canvas's activations should match a given image's, seen through the same
crops), :class:`Closeness` (the same agreement with the picture a run starts from: the layer
regularizer of feature accentuation), and :class:`GramDiversity`, Lucid's penalty that keeps the
variants of one objective apart.

On CLIP and SigLIP checkpoints, :class:`Text` (kind ``"text"``) pushes every crop's image embedding
toward a text prompt's (:mod:`maco_hub.objectives.text`).
"""

from .base import Objective, Sum
from .builtin import COSINE_FLOOR, Channel, ClassLogit, Direction, LayerEnergy, Neuron, parse
from .guided import Closeness, GramDiversity, Inversion
from .text import Text

__all__ = [
    "COSINE_FLOOR",
    "Channel",
    "ClassLogit",
    "Closeness",
    "Direction",
    "GramDiversity",
    "Inversion",
    "LayerEnergy",
    "Neuron",
    "Objective",
    "Sum",
    "Text",
    "parse",
]
