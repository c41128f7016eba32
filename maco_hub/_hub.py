"""What every Hub operation shares: the library tag, repo-id checks and one translator of the
client's exceptions into clear maco_hub errors (galleries and spectra alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._version import __version__
from .errors import ConfigError, HubError, MacoHubError

LIBRARY = {"library_name": "maco_hub", "library_version": __version__}
"""Sent with every request, as the Hub's conventions ask."""


def check_repo_id(repo_id: str) -> None:
    """ConfigError unless ``repo_id`` is a well-formed ``namespace/name``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if not isinstance(repo_id, str) or repo_id.count("/") != 1:
            raise HFValidationError("expected exactly one '/' between namespace and name")
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ConfigError(
            f"Hub repo id {repo_id!r} is malformed ({error}); use 'namespace/name', "
            "e.g. 'my-user/vit-base-maco'."
        ) from None


@contextmanager
def hub_errors(
    repo_id: str,
    repo_type: str,
    *,
    action: str,
    revision: str | None = None,
    error: type[MacoHubError] = HubError,
) -> Iterator[None]:
    """Turn the client's exceptions into one ``error`` naming the repo, what failed and the fix:
    'Could not {action} the {repo_type} repo {repo_id} (revision ...) on ENDPOINT: ...'."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" (revision {revision!r})" if revision else ""
    where = f"the {repo_type} repo {repo_id!r}{at} on {constants.ENDPOINT}"
    try:
        yield
    except RevisionNotFoundError as cause:
        raise error(
            f"Could not {action} {where}: revision not found. Check the branch, tag or commit."
        ) from cause
    except RepositoryNotFoundError as cause:
        hint = _other_type_hint(repo_id, repo_type)
        raise error(
            f"Could not {action} {where}: repository not found{hint}. Check the id and that "
            "your token can see it."
        ) from cause
    except LocalEntryNotFoundError as cause:
        raise error(
            f"Could not {action} {where}: it is not in the local cache and the Hub is "
            "unreachable or offline (HF_HUB_OFFLINE=1). Connect once to download it."
        ) from cause
    except EntryNotFoundError as cause:
        raise error(
            f"Could not {action} {where}: no such file there. Check the file name and the revision."
        ) from cause
    except HfHubHTTPError as cause:
        status = getattr(cause.response, "status_code", None)
        if status in (401, 403):
            raise error(
                f"Could not {action} {where}: permission denied (HTTP {status}). Use a token "
                "with write access (HF_TOKEN or `hf auth login`) or a namespace you own."
            ) from cause
        raise error(
            f"Could not {action} {where}: HTTP {status}. Nothing local was changed; try again."
        ) from cause
    except Exception as cause:
        if _is_connection_error(cause):
            raise error(
                f"Could not {action} {where}: the Hub is unreachable ({type(cause).__name__}). "
                "Nothing local was changed; run the same command again when online."
            ) from cause
        raise


def _other_type_hint(repo_id: str, repo_type: str) -> str:
    from huggingface_hub import HfApi

    other = "model" if repo_type == "dataset" else "dataset"
    try:
        exists = HfApi(**LIBRARY).repo_exists(repo_id, repo_type=other)
    except Exception:
        return ""
    if exists:
        return f" (a {other} repo of that name exists: galleries are dataset repos, spectra are model repos)"
    return ""


def _is_connection_error(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return any(
        cls.__name__
        in (
            "ConnectError",
            "ConnectTimeout",
            "ReadTimeout",
            "NetworkError",
            "RemoteProtocolError",
            "OfflineModeIsEnabled",
        )
        for cls in type(error).__mro__
    )
