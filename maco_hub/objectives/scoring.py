"""The engine's score function for a batch of objectives, with hooks scoped to its lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError
from ..models.hooks import capture, layer_table
from .builtin import Objective
from .guided import GramDiversity, reference_key

if TYPE_CHECKING:
    from ..models.loader import LoadedModel


class BatchScorer:
    """The engine's ``score_fn(pixel_values, image_index[, references]) -> Tensor[N]`` (float32,
    maximize): one forward pass scores every row with the objective its image index names.

    ``references`` (rows seen through the same crops, see :mod:`maco_hub.engine.guides`) go
    through the model too, without gradients, for the rows whose objective reads them; the
    ``penalties`` (:class:`~maco_hub.objectives.guided.GramDiversity`) are subtracted from every row.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        objectives: Sequence[Objective],
        store: Any,
        penalties: Sequence[GramDiversity] = (),
    ) -> None:
        self.loaded = loaded
        self.objectives = tuple(objectives)  # validated; objective j scores image j
        self._store = store
        self._table = layer_table(loaded)
        self._needs_logits = any(o.needs_logits for o in self.objectives)
        self._penalties = tuple(penalties)
        self._referenced = [j for j, o in enumerate(self.objectives) if o.reference_layers]

    def plain(self, objectives: Sequence[Objective]) -> BatchScorer:
        """A scorer of ``objectives`` (reading layers hooked here) on the same hooks, no penalty:
        the final scores of objectives trained with regularizers."""
        return BatchScorer(self.loaded, objectives, self._store)

    def __call__(
        self, pixel_values: torch.Tensor, image_index: torch.Tensor, references: torch.Tensor | None = None
    ) -> torch.Tensor:
        index = torch.as_tensor(image_index).long().reshape(-1)
        if index.numel() != pixel_values.shape[0]:
            raise ConfigError(f"image_index has {index.numel()} entries for {pixel_values.shape[0]} rows.")
        on_host = index.device.type == "cpu"
        if on_host:
            self._check_index(index)
        else:  # reading the values would make the host wait for the device: checked there
            torch._assert_async(((index >= 0) & (index < len(self.objectives))).all())
        seen = self._reference_acts(references, index, on_host) if self._referenced else {}
        self._store.clear()
        outputs = self.loaded.forward(pixel_values)
        acts = {**self._store.take(), **seen}
        logits = self.loaded.logits(outputs) if self._needs_logits else None
        del outputs
        if on_host:
            scores = self._grouped(index, pixel_values.device, acts, logits)
        else:
            scores = self._masked(index.to(pixel_values.device), acts, logits)
        for penalty in self._penalties:
            scores = scores - penalty(acts, index.to(pixel_values.device))
        return scores

    def _reference_acts(self, references: torch.Tensor | None, index: torch.Tensor, on_host: bool) -> dict:
        """The references' activations at the layers objectives compare, under reference keys
        (rows of objectives without a reference hold zeros; on the host only needed rows run)."""
        if references is None:
            raise ConfigError(
                "An objective compares the canvas with an image (Inversion, Closeness), but the "
                "engine passed no references: give optimize(guides=Guides(references=...))."
            )
        names = frozenset().union(*(self.objectives[j].reference_layers for j in self._referenced))
        rows = torch.isin(index, torch.tensor(self._referenced)) if on_host else None
        if rows is not None and not bool(rows.any()):
            return {}
        with torch.no_grad():
            self._store.clear()
            chosen = (
                references if rows is None or bool(rows.all()) else references[rows.to(references.device)]
            )
            self.loaded.forward(chosen)
            captured = self._store.take()
        seen = {}
        for name in names:
            act = captured[name].detach()
            if chosen is not references:
                full = act.new_zeros((len(references), *act.shape[1:]))
                act = full.index_put((rows.nonzero(as_tuple=True)[0].to(act.device),), act)
            seen[reference_key(name)] = act
        return seen

    def _check_index(self, index: torch.Tensor) -> None:
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self.objectives)):
            raise ConfigError(
                f"image_index values must lie in 0..{len(self.objectives) - 1} (one per "
                f"objective); got {int(index.min())}..{int(index.max())}."
            )

    def _grouped(
        self, index: torch.Tensor, device: torch.device, acts: dict, logits: torch.Tensor | None
    ) -> torch.Tensor:
        """Each objective scores only its own rows (``index`` on the host, where they are read)."""
        scores = torch.zeros(index.numel(), device=device, dtype=torch.float32)
        for j in index.unique().tolist():
            rows = (index == j).nonzero(as_tuple=True)[0].to(device)
            objective = self.objectives[j]
            mine = {name: acts[name][rows] for name in objective.layers}
            mine.update({reference_key(n): acts[reference_key(n)][rows] for n in objective.reference_layers})
            part = objective.score(mine, logits[rows] if logits is not None else None, self._table)
            scores = scores.index_put((rows,), part.float())
        return scores

    def _masked(self, index: torch.Tensor, acts: dict, logits: torch.Tensor | None) -> torch.Tensor:
        """Each objective scores every row and keeps its own: no value goes back to the host, so the
        device never waits (objectives are cheap next to the model's forward pass)."""
        scores = torch.zeros(index.numel(), device=index.device, dtype=torch.float32)
        for j, objective in enumerate(self.objectives):
            names = [*objective.layers, *map(reference_key, objective.reference_layers)]
            part = objective.score({name: acts[name] for name in names}, logits, self._table)
            scores = torch.where(index == j, part.float(), scores)
        return scores


def validated(loaded: LoadedModel, objectives: Objective | Sequence[Objective]) -> list[Objective]:
    """The one place objectives are checked against a model: each must be an Objective, and
    comes back resolved (:meth:`~maco_hub.objectives.Objective.validate`)."""
    items = [objectives] if isinstance(objectives, Objective) else list(objectives)
    if not items:
        raise ConfigError("No objective to score: pass at least one.")
    for item in items:
        if not isinstance(item, Objective):
            raise ConfigError(f"{item!r} is not an objective; build one with maco_hub.objectives.")
    return [item.validate(loaded) for item in items]


@contextlib.contextmanager
def scoring(
    loaded: LoadedModel,
    objectives: Objective | Sequence[Objective],
    *,
    checked: bool = False,
    penalties: Sequence[GramDiversity] = (),
    also: Sequence[str] = (),
) -> Iterator[BatchScorer]:
    """Yield the engine's score_fn for ``objectives`` (objective j for image j), validated by
    :func:`validated` unless ``checked`` says they come from it already, minus ``penalties``.

    Hooks sit only on the layers the objectives and the penalties read (and ``also``: those of
    objectives a :meth:`BatchScorer.plain` scorer will score) and are removed when the block ends,
    also on error. One forward pass per call scores all rows.
    """
    bound = list(objectives) if checked else validated(loaded, objectives)
    names = set().union(*(o.layers for o in bound), also, (p.layer for p in penalties))
    with capture(loaded, sorted(names)) as store:
        yield BatchScorer(loaded, bound, store, penalties)
