"""How legible a gallery is: the MACO paper's benchmark, computed for every class row.

:func:`evaluate` shows each class visualization to one or more *judges* (image classifiers, ideally
not the model that made it) and returns an :class:`Evaluation`: flat per-row columns keyed by the
row's key, a summary per judge and a Markdown table.

Definitions (after Fel et al., "Unlocking Feature Visualization for Deeper Networks with MAgnitude
Constrained Optimization", NeurIPS 2023, section 4):

* **Transferability**: whether another network classifies the visualization as its class. Here per
  row and judge: top-1 hit, top-5 hit and softmax probability of the target class on the whole
  canvas, and the same averaged over ``crops`` random square crops whose side is 25–30 % of the
  canvas (what a zoomed-in look shows). The target class is found in the judge's labels **by
  name** (``judge.resolve_class(row.label)``), never by index, so any classifier sharing the label
  space can judge; rows whose label the judge lacks are reported in the ``status`` column.
* **Plausibility**: how similar a visualization is to real images of its class in a model's feature
  space: the median, over the reference images of the class, of the cosine similarity between
  their features and the visualization's (whole canvas; ``crops_plausibility`` averages the score
  of each crop). Higher is more plausible.
* **Fréchet distance**: FID's formula between the features of visualizations and of real images
  of the class (lower is closer). Per row it compares the row's views (whole canvas + crops) with
  the reference images of its class; the summary also gives the paper's set-level figure,
  ``frechet_pooled``: all whole canvases against all reference images of their classes.

Feature space: each judge's penultimate features, the input of its classifier head
(:mod:`maco_hub.legibility.features`). The reference is a labelled image set
(:func:`maco_hub.legibility.reference.load_reference`: a folder of class folders, a Hub dataset id with a
ClassLabel column, or a mapping), matched to rows by class name through the judge, at most
``reference_per_class`` images per class. Without a reference only transferability is computed.

* **Artifact measures** (:mod:`maco_hub.legibility.artifacts`, no model): per row, whether its
  picture has a fine horizontal/vertical pixel lattice (``grid_db``), narrow periodic peaks
  (``peak_db``), a veil (``haze``), low contrast (``rms_contrast``) or bright borders
  (``border_excess``), with the values natural photos get; the summary shows their means.

Pixels: every view goes to the judge the way a photo would, with the judge's own convention: the
canvas (or crop) resized to its input size with its resampling filter, then its mean/std. Real
reference photos are first centre-cropped to a square. Crop boxes are fractions of the canvas drawn
once per call from ``numpy.random.default_rng(seed)`` (side U[0.25, 0.30] of the canvas, position
uniform over the canvas, borders included), so every row and every gallery evaluated with the same
seed is judged on the same boxes.
"""

from .artifacts import artifact_measures
from .judging import CROP_SIDE, crop_fractions, evaluate, judge_views

__all__ = ["CROP_SIDE", "artifact_measures", "crop_fractions", "evaluate", "judge_views"]
