"""A classifier's penultimate features, and the statistics that compare image sets in that space.

Feature space: the input of the classifier's head, i.e. of its last ``nn.Linear`` whose outputs are
the classes (for CNNs the globally pooled last feature map, for ViTs the final CLS/pooled token),
read with a forward pre-hook during the same pass that gives the logits.

* :func:`plausibility`: median cosine similarity between one image's features and those of real
  images of its class (the MACO paper's plausibility score; higher is more plausible).
* :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to two feature sets,
  ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (FID's formula, Heusel et al. 2017, in the
  judge's feature space instead of Inception's). The trace of the matrix square root is computed
  exactly, without scipy, from singular values (see :func:`_trace_sqrt_product`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..models.loader import LoadedModel


def head_layer(judge: LoadedModel) -> tuple[str, nn.Linear]:
    """Name and module of the judge's classification head (last Linear with num_classes outputs)."""
    count = judge.num_classes
    found = [
        (name, module)
        for name, module in judge.module.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == count
    ]
    if not found:
        raise ConfigError(
            f"Judge {judge.model_id!r} has no nn.Linear layer with {count} outputs (its classifier "
            "head), so its penultimate features cannot be read; use an image classifier whose head "
            "is a linear layer."
        )
    return found[-1]


@torch.no_grad()
def logits_and_features(judge: LoadedModel, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, classes) and penultimate features (N, D) of normalized pixels, on the CPU, float32."""
    _, head = head_layer(judge)
    seen: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    try:
        logits = judge.logits(judge.forward(pixels))
    finally:
        handle.remove()
    if not seen:
        raise ConfigError(f"Judge {judge.model_id!r} did not call its classifier head in forward.")
    features = seen[-1].reshape(seen[-1].shape[0], -1)
    return logits.float().cpu(), features.float().cpu()


def plausibility(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per row of ``features`` (N, D): median cosine similarity to the rows of ``reference`` (M, D)."""
    a = _unit(np.asarray(features, dtype=np.float64))
    b = _unit(np.asarray(reference, dtype=np.float64))
    return np.median(a @ b.T, axis=1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (N, D) and ``b`` (M, D).

    Covariances are unbiased sample covariances (zero for a single sample), so small sets give
    large, noisy values: compare numbers computed with the same set sizes only.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ConfigError(
            f"Fréchet distance needs two non-empty (N, D) feature sets with the same D; "
            f"got {a.shape} and {b.shape}."
        )
    xa, xb = _scaled_centred(a), _scaled_centred(b)
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    trace_term = float(np.sum(xa**2) + np.sum(xb**2)) - 2.0 * _trace_sqrt_product(xa, xb)
    return max(mean_term + trace_term, 0.0)


def _scaled_centred(x: np.ndarray) -> np.ndarray:
    """Rows centred and divided by sqrt(n - 1), so that covariance = X^T X (zeros when n = 1)."""
    if len(x) < 2:
        return np.zeros_like(x)
    return (x - x.mean(axis=0)) / np.sqrt(len(x) - 1)


def _trace_sqrt_product(xa: np.ndarray, xb: np.ndarray) -> float:
    """Tr((S_a S_b)^(1/2)) for S_a = Xa^T Xa and S_b = Xb^T Xb.

    The non-zero eigenvalues of S_a S_b are those of (Xa Xb^T)(Xa Xb^T)^T, so the trace of the
    square root is the sum of the singular values (nuclear norm) of the small N x M matrix
    Xa Xb^T. With more samples than dimensions, the D x D form is used instead:
    Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)) from two symmetric eigen-decompositions.
    """
    n, m, d = len(xa), len(xb), xa.shape[1]
    if n * m <= d * d:
        return float(np.linalg.svd(xa @ xb.T, compute_uv=False).sum())
    values, vectors = np.linalg.eigh(xa.T @ xa)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root @ (xb.T @ xb) @ root)
    return float(np.sqrt(np.clip(inner, 0, None)).sum())


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
