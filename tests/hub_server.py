"""A small Hub-compatible HTTP server on 127.0.0.1, for driving the real Hugging Face clients in tests.

The Hub cannot be reached from the test machines, so ``huggingface_hub`` and ``datasets`` are pointed at
this server instead. It implements what their upload, download and listing code paths call: repo
creation and info, preupload, Git LFS (basic transfer + verify), ndjson commits with history, resolve
(HEAD/GET with Range), tree, paths-info, commits, refs, branches and tags. Errors carry the Hub's
``X-Error-Code`` header and ``{"error": ...}`` body, so the clients raise their typed exceptions.

How the test suite uses it
--------------------------
``tests/conftest.py`` calls :func:`reserve_session_hub` at import time, before any test imports
``huggingface_hub`` or ``datasets`` (both read ``HF_ENDPOINT`` when imported). That picks a port
and sets ``HF_ENDPOINT=http://127.0.0.1:<port>``, ``HF_HUB_DISABLE_XET=1`` and a dummy ``HF_TOKEN``;
the ``hub`` fixture starts the server on that port the first time a test asks for it.
``HF_HUB_OFFLINE=1`` stays set for the whole suite, so a test that talks to the server asks for the
``online_hub`` fixture: for the test's duration it turns offline mode off in ``huggingface_hub.constants``
and ``datasets.config`` (both are read at call time) and in the environment (for modules first imported
during the test), then puts everything back and clears injected failures and write denials::

    def test_push(online_hub):
        from huggingface_hub import HfApi

        repo_id = online_hub.new_repo_id("gallery")      # unique per call: no clean-up needed
        HfApi().create_repo(repo_id, repo_type="dataset")
        online_hub.fail_next(1, method="POST", path_contains="/commit/")   # next commit answers 500
        online_hub.deny_write(repo_id, repo_type="dataset")                # writes answer 403
        with online_hub.unreachable():                                     # port closed meanwhile
            ...
        assert online_hub.read_file(repo_id, "README.md", repo_type="dataset") == b"..."

For a subprocess (the CLI), pass ``env={**os.environ, **online_hub.client_env()}``.

What the clients raise (huggingface_hub 2.4, datasets 5.2)
----------------------------------------------------------
- unknown repo, or a model repo asked for as a dataset: ``RepositoryNotFoundError`` (404, RepoNotFound);
- unknown revision: ``RevisionNotFoundError``; unknown file: ``RemoteEntryNotFoundError``, a subclass of
  ``EntryNotFoundError``;
- ``deny_write``: ``HfHubHTTPError`` with ``response.status_code == 403``;
- ``fail_next(status=500)`` on a commit: ``HfHubHTTPError`` (500); the commit is not retried.
  Preupload, the LFS batch/PUT/verify calls, tree listing and uncached downloads go through
  ``http_backoff``, which retries 408/429/5xx and connection errors up to 5 times after 1, 2, 4, 8, 8 s:
  one injected failure there costs about a second and the call then succeeds;
- server down (:meth:`HubServer.unreachable`): ``httpx2.ConnectError`` (an ``httpx2.TransportError``, neither
  ``ConnectionError`` nor ``OSError``; the Hub's ``OfflineModeIsEnabled`` *is* a ``ConnectionError``).
  ``repo_info`` raises it at once; ``list_repo_files`` and ``upload_file`` raise it after the ~23 s of
  retries; ``hf_hub_download`` returns the cached copy at once if there is one, else raises
  ``LocalEntryNotFoundError`` (its ``__cause__`` is the ``ConnectError``) after ~23 s.

Not implemented: pull requests, Xet, multipart LFS, gated/private access checks (``private`` is recorded
only), space runtimes. An unknown route answers 404 and shows up in :attr:`HubServer.requests`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import pytest

DUMMY_TOKEN = "hf_maco_hub_dummy_token"  # accepted by the server, recorded in the request log
USER = "maco-tester"  # the namespace of repos created without one, and the whoami user
_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_ACTIONS = {"revision", "tree", "paths-info", "preupload", "commit", "commits", "refs", "branch", "tag"}
_LFS_SUFFIXES = frozenset(
    ".parquet .png .jpg .jpeg .webp .safetensors .bin .pt .npy .npz .arrow .zip .gz .pkl .h5".split()
)
_LFS_MIN_SIZE = 10 * 1024 * 1024  # larger files go to LFS whatever their type (the Hub's rule of thumb)
_GITATTRIBUTES = (
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubRequest:
    """One request the server answered."""

    method: str  # HTTP method
    path: str  # URL path, percent-decoded
    query: str  # raw query string
    status: int  # status code sent back
    token: str | None  # bearer token sent by the client, if any


@dataclass(frozen=True)
class _Entry:
    sha256: str  # content hash, names the blob on disk
    size: int  # bytes
    lfs: bool  # stored as a Git LFS object
    git_oid: str  # git blob id of the content (of the LFS pointer for LFS files)


@dataclass(frozen=True)
class _Commit:
    oid: str  # 40 hex digits
    parent: str | None  # previous commit on the branch
    files: dict[str, _Entry]  # the whole tree at this commit; never mutated
    title: str  # commit summary
    message: str  # commit description
    date: str  # ISO 8601, as the Hub writes it


@dataclass
class _Repo:
    repo_type: str  # model, dataset or space
    repo_id: str  # namespace/name
    private: bool  # as requested at creation
    created: str  # ISO 8601
    commits: dict[str, _Commit] = field(default_factory=dict)  # by oid
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    tags: dict[str, str] = field(default_factory=dict)  # name -> commit oid


@dataclass
class _Failure:
    remaining: int  # requests still to fail
    method: str | None  # only this HTTP method, if set
    path_contains: str | None  # only paths containing this, if set
    status: int  # status code to answer


class HubError(Exception):
    """An error answer: status, Hub error code (X-Error-Code) and message."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None, **body: Any
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = (
            status,
            message,
            code,
            headers or {},
            body,
        )


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class HubServer:
    """A Hub-compatible server on 127.0.0.1; repos live in memory, file contents under ``root``."""

    def __init__(self, root: str | Path | None = None, *, tree_page_size: int = 1000) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="hub_server_")) if root is None else Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.tree_page_size = tree_page_size
        self.port = 0
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lfs: dict[str, int] = {}  # sha256 -> size of uploaded LFS objects
        self._failures: list[_Failure] = []
        self._denied: set[tuple[str, str]] = set()
        self._log: list[HubRequest] = []
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # ----- lifecycle -----
    @property
    def endpoint(self) -> str:
        """Base URL to give clients as HF_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> HubServer:
        """Listen (again) on 127.0.0.1, on the same port as before if there was one."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.hub = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port and every open connection; repos are kept for a later :meth:`start`."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        """Stop, and delete the storage folder if the server made it."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        """Simulate the network being down: the port is closed inside the block, reopened after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    # ----- test controls -----
    def reset(self) -> None:
        """Forget every repo, upload, injected failure, denial and logged request."""
        with self._lock:
            self._repos.clear()
            self._lfs.clear()
            self._failures.clear()
            self._denied.clear()
            self._log.clear()
        shutil.rmtree(self.root / "blobs", ignore_errors=True)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)

    def new_repo_id(self, name: str = "repo", *, namespace: str = USER) -> str:
        """A repo id no other call of this server has returned (no need to reset between tests)."""
        return f"{namespace}/{name}-{next(self._ids)}"

    def fail_next(
        self, n: int = 1, *, method: str | None = None, path_contains: str | None = None, status: int = 500
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` and a Hub-like error body."""
        with self._lock:
            self._failures.append(_Failure(n, method.upper() if method else None, path_contains, status))

    def deny_write(self, repo_id: str, *, repo_type: str = "model") -> None:
        """Answer 403 to create, preupload, LFS batch, commit, branch and tag calls for this repo."""
        with self._lock:
            self._denied.add((repo_type, repo_id))

    def allow_all(self) -> None:
        """Drop every injected failure and write denial."""
        with self._lock:
            self._failures.clear()
            self._denied.clear()

    @property
    def requests(self) -> list[HubRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def client_env(self) -> dict[str, str]:
        """Environment variables that point a subprocess's clients at this server, online."""
        return {
            "HF_ENDPOINT": self.endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_TOKEN": DUMMY_TOKEN,
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
        }

    # ----- direct inspection (bypasses HTTP) -----
    def list_files(self, repo_id: str, *, repo_type: str = "model", revision: str = "main") -> list[str]:
        """Paths in the repo at ``revision``, sorted."""
        return sorted(self._commit(self._repo(repo_type, repo_id), revision).files)

    def read_file(
        self, repo_id: str, path: str, *, repo_type: str = "model", revision: str = "main"
    ) -> bytes:
        """Content of one file at ``revision``."""
        entry = self._commit(self._repo(repo_type, repo_id), revision).files.get(path)
        if entry is None:
            raise HubError(404, f"{path} not in {repo_id}", "EntryNotFound")
        return self._blob(entry.sha256).read_bytes()

    def is_lfs(self, repo_id: str, path: str, *, repo_type: str = "model", revision: str = "main") -> bool:
        """Whether the file is stored as a Git LFS object."""
        return self._commit(self._repo(repo_type, repo_id), revision).files[path].lfs

    def commit_ids(self, repo_id: str, *, repo_type: str = "model", revision: str = "main") -> list[str]:
        """Commit ids reachable from ``revision``, newest first (the creation commit last)."""
        return [c.oid for c in self._history(self._repo(repo_type, repo_id), revision)]

    # ----- storage -----
    def _blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def _store(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        target = self._blob(sha)
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            Path(tmp).replace(target)
        return sha

    def _repo(self, repo_type: str, repo_id: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository Not Found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def _commit(self, repo: _Repo, revision: str) -> _Commit:
        oid = repo.branches.get(revision) or repo.tags.get(revision)
        if oid is None and revision.startswith("refs/heads/"):
            oid = repo.branches.get(revision.removeprefix("refs/heads/"))
        if oid is None and _COMMIT_RE.match(revision) and revision in repo.commits:
            oid = revision
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]

    def _history(self, repo: _Repo, revision: str) -> list[_Commit]:
        commit: _Commit | None = self._commit(repo, revision)
        out = []
        while commit is not None:
            out.append(commit)
            commit = repo.commits[commit.parent] if commit.parent else None
        return out

    def _new_commit(
        self, repo: _Repo, branch: str, files: dict[str, _Entry], title: str, message: str
    ) -> _Commit:
        parent = repo.branches.get(branch)
        oid = hashlib.sha1(f"{repo.repo_id}{parent}{title}{uuid.uuid4()}".encode()).hexdigest()
        commit = _Commit(oid, parent, dict(files), title, message, _now())
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    def _create_repo(self, repo_type: str, repo_id: str, private: bool) -> _Repo:
        repo = _Repo(repo_type, repo_id, private, _now())
        sha = self._store(_GITATTRIBUTES)
        entry = _Entry(sha, len(_GITATTRIBUTES), False, _git_oid(_GITATTRIBUTES))
        self._new_commit(repo, "main", {".gitattributes": entry}, "initial commit", "")
        self._repos[(repo_type, repo_id)] = repo
        return repo

    def _check_write(self, repo_type: str, repo_id: str) -> None:
        if (repo_type, repo_id) in self._denied:
            raise HubError(403, f"You don't have the rights to write to the {repo_type} repo {repo_id}")

    def _url(self, repo: _Repo) -> str:
        return f"{self.endpoint}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: HubServer

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.hub._lock:
            self.hub._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.hub._lock:
            self.hub._connections.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # silence the stderr log
        pass

    # ----- plumbing -----
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, *, length: int | None = None
    ) -> None:
        self.send_response(status)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        for key, value in all_headers.items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _json(self, data: Any, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message.encode("ascii", "replace").decode(), **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json({"error": err.message, **err.body}, err.status, headers)

    def _handle(self) -> None:
        hub = self.server.hub
        body = self._read_body()
        split = urlsplit(self.path)
        self._status = 500
        try:
            with hub._lock:
                for failure in hub._failures:
                    if (failure.method in (None, self.command)) and (
                        failure.path_contains is None or failure.path_contains in unquote(split.path)
                    ):
                        failure.remaining -= 1
                        if failure.remaining <= 0:
                            hub._failures.remove(failure)
                        raise HubError(failure.status, f"Injected failure ({failure.status})")
            _route(self, hub, split.path, parse_qs(split.query), body)
        except HubError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):  # the client went away: nothing to answer
            self.close_connection = True
        except Exception as err:  # a server bug: answer 500 rather than drop the connection
            self._error(HubError(500, f"Test hub server error: {type(err).__name__}: {err}"))
        finally:
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
            with hub._lock:
                hub._log.append(
                    HubRequest(self.command, unquote(split.path), split.query, self._status, token)
                )

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


# ----- routing -----
def _route(h: _Handler, hub: HubServer, raw_path: str, query: dict, body: bytes) -> None:
    segs = [unquote(s) for s in raw_path.strip("/").split("/")]
    method = h.command
    if segs[:2] == ["api", "whoami-v2"]:
        return h._json(
            {
                "type": "user",
                "name": USER,
                "fullname": USER,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "dummy", "role": "write"}},
            }
        )
    if segs[:2] == ["api", "validate-yaml"] and method == "POST":
        return _validate_yaml(h, json.loads(body or b"{}").get("content", ""))
    if segs[:2] == ["api", "repos"] and method == "POST" and len(segs) == 3:
        return _repos_create_delete(h, hub, segs[2], json.loads(body or b"{}"))
    if segs[0] == "api" and len(segs) >= 3 and segs[1] in _REPO_TYPES:
        repo_type, rest = _REPO_TYPES[segs[1]], segs[2:]
        n = 1 if len(rest) < 2 or rest[1] in _API_ACTIONS else 2
        return _api(h, hub, repo_type, "/".join(rest[:n]), rest[n:], query, body)
    if segs[0] == "_lfs" and len(segs) >= 2:
        return _lfs_object(h, hub, segs[1], segs[2:], body)
    repo_type = _REPO_TYPES.get(segs[0]) if segs[0] in ("datasets", "spaces") else None
    rest = segs[1:] if repo_type else segs
    repo_type = repo_type or "model"
    if raw_path.endswith(".git/info/lfs/objects/batch") and method == "POST":
        repo_id = "/".join(rest[:-4]).removesuffix(".git")
        return _lfs_batch(h, hub, repo_type, repo_id, json.loads(body or b"{}"))
    for n in (1, 2):
        if len(rest) > n + 1 and rest[n] == "resolve" and method in ("GET", "HEAD"):
            return _resolve(h, hub, repo_type, "/".join(rest[:n]), rest[n + 1], "/".join(rest[n + 2 :]))
    raise HubError(404, f"Not found: {method} {raw_path} (not implemented by the test hub server)")


def _validate_yaml(h: _Handler, content: str) -> None:
    """Check a README's YAML front matter, as the Hub does before accepting a card."""
    import yaml

    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.S)
    try:
        metadata = yaml.safe_load(match.group(1)) if match else {}
    except yaml.YAMLError as err:
        return h._json({"errors": [{"message": f"Invalid YAML: {err}"}], "warnings": []}, 400)
    if metadata is not None and not isinstance(metadata, dict):
        return h._json({"errors": [{"message": "The YAML metadata must be a mapping"}], "warnings": []}, 400)
    h._json({"errors": [], "warnings": []})


def _repos_create_delete(h: _Handler, hub: HubServer, action: str, payload: dict) -> None:
    repo_type = payload.get("type") or "model"
    repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
    with hub._lock:
        hub._check_write(repo_type, repo_id)
        if action == "delete":
            hub._repo(repo_type, repo_id)
            del hub._repos[(repo_type, repo_id)]
            return h._json({})
        if action != "create":
            raise HubError(404, f"Unknown repos action {action!r}")
        if (repo_type, repo_id) in hub._repos:
            url = hub._url(hub._repos[(repo_type, repo_id)])
            raise HubError(409, f"You already created this {repo_type} repo", url=url)
        private = payload.get("private") or payload.get("visibility") == "private"
        repo = hub._create_repo(repo_type, repo_id, bool(private))
        h._json({"url": hub._url(repo), "name": repo_id, "id": repo_id})


def _api(
    h: _Handler, hub: HubServer, repo_type: str, repo_id: str, rest: list[str], query: dict, body: bytes
) -> None:
    action, args = (rest[0], rest[1:]) if rest else ("revision", ["main"])
    method = h.command
    with hub._lock:
        repo = hub._repo(repo_type, repo_id)
        if action in ("preupload", "commit", "branch", "tag") and method == "POST":
            hub._check_write(repo_type, repo_id)
        rev = args[0] if args else "main"
        if action == "revision" and method == "GET":
            return h._json(_repo_info(hub, repo, hub._commit(repo, rev), "blobs" in query))
        if action == "tree" and method == "GET":
            return _tree(h, hub, repo, rev, "/".join(args[1:]).strip("/"), query)
        if action == "paths-info" and method == "POST":
            form = _parse_form(h, body)
            commit = hub._commit(repo, rev)
            expand = str(form.get("expand", [False])[0]).lower() == "true"
            entries = [_tree_entry(hub, repo, commit, p.strip("/"), expand) for p in form.get("paths", [])]
            return h._json([e for e in entries if e is not None])
        if action == "commits" and method == "GET":
            return h._json([_commit_json(c) for c in hub._history(repo, rev)])
        if action == "refs" and method == "GET":

            def refs(kind: str, table: dict) -> list:
                return [{"name": k, "ref": f"refs/{kind}/{k}", "targetCommit": v} for k, v in table.items()]

            return h._json(
                {
                    "branches": refs("heads", repo.branches),
                    "tags": refs("tags", repo.tags),
                    "converts": [],
                    "pullRequests": [],
                }
            )
        if action == "preupload" and method == "POST":
            return h._json(_preupload(hub, repo, rev, json.loads(body)))
        if action == "commit" and method == "POST":
            if query.get("create_pr"):
                raise HubError(400, "Pull requests are not supported by the test hub server")
            return h._json(_apply_commit(hub, repo, rev, body))
        if action in ("branch", "tag") and method in ("POST", "DELETE"):
            return _ref(h, hub, repo, action, rev, json.loads(body or b"{}"))
    raise HubError(404, f"Not found: {method} {action} (not implemented by the test hub server)")


def _parse_form(h: _Handler, body: bytes) -> dict:
    if "json" in h.headers.get("Content-Type", ""):
        data = json.loads(body)
        return {k: v if isinstance(v, list) else [v] for k, v in data.items()}
    return parse_qs(body.decode())


def _repo_info(hub: HubServer, repo: _Repo, commit: _Commit, blobs: bool) -> dict:
    siblings = []
    for path, entry in sorted(commit.files.items()):
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling.update(size=entry.size, blobId=entry.git_oid)
            if entry.lfs:
                pointer = len(_lfs_pointer(entry.sha256, entry.size))
                sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": pointer}
        siblings.append(sibling)
    return {
        "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.repo_id,
        "author": repo.repo_id.split("/")[0],
        "sha": commit.oid,
        "lastModified": commit.date,
        "createdAt": repo.created,
        "private": repo.private,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
    }


def _commit_json(c: _Commit) -> dict:
    return {"id": c.oid, "title": c.title, "message": c.message, "authors": [{"user": USER}], "date": c.date}


def _last_commit(hub: HubServer, repo: _Repo, commit: _Commit, path: str) -> dict:
    """The oldest commit, walking back from ``commit``, since which ``path`` (file or folder) is unchanged."""

    def view(c: _Commit) -> Any:
        return c.files.get(path) or sorted((k, v) for k, v in c.files.items() if k.startswith(path + "/"))

    current = commit
    while current.parent and view(repo.commits[current.parent]) == view(commit):
        current = repo.commits[current.parent]
    return {"id": current.oid, "title": current.title, "date": current.date}


def _tree_entry(hub: HubServer, repo: _Repo, commit: _Commit, path: str, expand: bool) -> dict | None:
    entry = commit.files.get(path)
    if entry is not None:
        out: dict[str, Any] = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": path}
        if entry.lfs:
            pointer = len(_lfs_pointer(entry.sha256, entry.size))
            out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": pointer}
    elif any(p.startswith(path + "/") for p in commit.files):
        inside = sorted((k, v.git_oid) for k, v in commit.files.items() if k.startswith(path + "/"))
        out = {
            "type": "directory",
            "oid": hashlib.sha1(repr(inside).encode()).hexdigest(),
            "size": 0,
            "path": path,
        }
    else:
        return None
    if expand:
        out["lastCommit"] = _last_commit(hub, repo, commit, path)
    return out


def _tree(h: _Handler, hub: HubServer, repo: _Repo, rev: str, path: str, query: dict) -> None:
    commit = hub._commit(repo, rev)
    recursive = query.get("recursive", ["false"])[0].lower() == "true"
    expand = query.get("expand", ["false"])[0].lower() == "true"
    prefix = f"{path}/" if path else ""
    if path and not any(p.startswith(prefix) for p in commit.files):
        raise HubError(
            404,
            f"Entry not found: {path} is not a folder at {rev}",
            "EntryNotFound",
            {"X-Repo-Commit": commit.oid},
        )
    names: set[str] = set()
    for file_path in commit.files:
        if not file_path.startswith(prefix):
            continue
        parts = file_path[len(prefix) :].split("/")
        depth = len(parts) if recursive else 1
        names.update(prefix + "/".join(parts[: i + 1]) for i in range(depth))
    ordered = sorted(names, key=lambda p: (p in commit.files, p))  # folders first, as the Hub lists them
    size = min(hub.tree_page_size, 50) if expand else hub.tree_page_size
    start = int(query.get("cursor", ["0"])[0])
    page = [_tree_entry(hub, repo, commit, p, expand) for p in ordered[start : start + size]]
    headers = {}
    if start + size < len(ordered):
        params = urlencode({"recursive": str(recursive), "expand": str(expand), "cursor": start + size})
        encoded = f"/{quote(path, safe='')}" if path else ""
        base = f"{hub.endpoint}/api/{repo.repo_type}s/{repo.repo_id}/tree/{quote(rev, safe='')}"
        link = f"{base}{encoded}?{params}"
        headers["Link"] = f'<{link}>; rel="next"'
    h._json(page, headers=headers)


def _preupload(hub: HubServer, repo: _Repo, rev: str, payload: dict) -> dict:
    files = hub._commit(repo, rev).files if rev in repo.branches else {}
    out = []
    for item in payload.get("files", []):
        path, size = item["path"], int(item["size"])
        sample = base64.b64decode(item.get("sample", ""))
        lfs = Path(path).suffix.lower() in _LFS_SUFFIXES or size >= _LFS_MIN_SIZE or b"\0" in sample
        existing = files.get(path)
        oid = None if existing is None else (existing.sha256 if existing.lfs else existing.git_oid)
        out.append(
            {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
        )
    return {"files": out, "commitOid": hub._commit(repo, rev).oid}


def _apply_commit(hub: HubServer, repo: _Repo, rev: str, body: bytes) -> dict:
    if rev not in repo.branches:
        raise HubError(404, f"Invalid rev id: {rev} (commits go to a branch)", "RevisionNotFound")
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "The commit payload must start with a header line")
    header = lines[0]["value"]
    parent = header.get("parentCommit")
    if parent and parent != repo.branches[rev]:
        raise HubError(
            412, f"A commit has happened since {parent}: the branch head is now {repo.branches[rev]}"
        )
    files = dict(hub._commit(repo, rev).files)
    for line in lines[1:]:
        key, value = line["key"], line["value"]
        path = value.get("path", "").strip("/")
        if key == "file":
            content = base64.b64decode(value["content"])
            files[path] = _Entry(hub._store(content), len(content), False, _git_oid(content))
        elif key == "lfsFile":
            sha = value["oid"]
            if sha not in hub._lfs:
                raise HubError(
                    422, f"LFS object {sha} for {path} was never uploaded: upload it before committing"
                )
            pointer = _lfs_pointer(sha, hub._lfs[sha])
            files[path] = _Entry(sha, hub._lfs[sha], True, _git_oid(pointer))
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            inside = [p for p in files if p.startswith(path + "/")]
            if not inside:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in inside:
                del files[p]
        else:
            raise HubError(400, f"Unsupported commit operation {key!r}")
    commit = hub._new_commit(
        repo, rev, files, header.get("summary") or "Update", header.get("description") or ""
    )
    return {
        "success": True,
        "commitOid": commit.oid,
        "commitUrl": f"{hub._url(repo)}/commit/{commit.oid}",
        "hookOutput": "",
        "pullRequestUrl": None,
    }


def _ref(h: _Handler, hub: HubServer, repo: _Repo, kind: str, rev: str, payload: dict) -> None:
    if kind == "branch":
        name, table, start = rev, repo.branches, payload.get("startingPoint") or "main"
    else:
        name, table, start = payload.get("tag", ""), repo.tags, rev
    if h.command == "DELETE":
        if table.pop(rev, None) is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return h._json({})
    if name in repo.branches or name in repo.tags:
        raise HubError(409, f"Reference already exists: {name}")
    table[name] = hub._commit(repo, start).oid
    h._json({})


def _lfs_batch(h: _Handler, hub: HubServer, repo_type: str, repo_id: str, payload: dict) -> None:
    with hub._lock:
        hub._repo(repo_type, repo_id)
        hub._check_write(repo_type, repo_id)
        if payload.get("operation") != "upload":
            raise HubError(400, "The test hub server only implements LFS uploads")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if hub._lfs.get(oid) != size:
                href = f"{hub.endpoint}/_lfs/{oid}"
                item["actions"] = {
                    "upload": {"href": href, "header": {}},
                    "verify": {"href": f"{href}/verify", "header": {}},
                }
            objects.append(item)
    h._json(
        {"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"}
    )


def _lfs_object(h: _Handler, hub: HubServer, oid: str, rest: list[str], body: bytes) -> None:
    if h.command == "PUT" and not rest:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match the LFS oid {oid}")
        hub._store(body)
        with hub._lock:
            hub._lfs[oid] = len(body)
        return h._send(200, b"", {"ETag": f'"{oid}"'})
    if h.command == "POST" and rest == ["verify"]:
        expected = json.loads(body or b"{}").get("size")
        with hub._lock:
            if hub._lfs.get(oid) is None or (expected is not None and hub._lfs[oid] != expected):
                raise HubError(404, f"LFS object {oid} was not uploaded (or has another size)")
        return h._json({})
    raise HubError(404, f"Not found: {h.command} LFS {oid}")


def _resolve(h: _Handler, hub: HubServer, repo_type: str, repo_id: str, rev: str, path: str) -> None:
    with hub._lock:
        repo = hub._repo(repo_type, repo_id)
        commit = hub._commit(repo, rev)
        entry = commit.files.get(path)
    headers = {"X-Repo-Commit": commit.oid}
    if entry is None:
        raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)
    headers.update({"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"})
    headers["ETag"] = f'"{entry.sha256 if entry.lfs else entry.git_oid}"'
    if entry.lfs:
        headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": entry.size})
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", h.headers.get("Range", "").strip())
    if h.command == "HEAD" or match is None:
        content = b"" if h.command == "HEAD" else hub._blob(entry.sha256).read_bytes()
        return h._send(200, content, headers, length=entry.size)
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last) if last else entry.size - 1, entry.size - 1)
    else:
        start, end = max(entry.size - int(last or 0), 0), entry.size - 1
    if start >= entry.size or start > end:
        raise HubError(
            416,
            f"Range not satisfiable: {h.headers['Range']} for {entry.size} bytes",
            headers={"Content-Range": f"bytes */{entry.size}"},
        )
    with hub._blob(entry.sha256).open("rb") as handle:
        handle.seek(start)
        chunk = handle.read(end - start + 1)
    h._send(206, chunk, {**headers, "Content-Range": f"bytes {start}-{end}/{entry.size}"})


# ----- test-suite wiring -----
_SESSION_HUB: HubServer | None = None


def reserve_session_hub(root: str | Path) -> HubServer:
    """Pick the suite's server port and point the clients at it, without starting it (the ``hub``
    fixture starts it on first use); call before huggingface_hub is imported."""
    global _SESSION_HUB
    if _SESSION_HUB is None:
        _SESSION_HUB = HubServer(root)
        with socket.socket() as probe:  # a free port now; the server binds it when first used
            probe.bind(("127.0.0.1", 0))
            _SESSION_HUB.port = probe.getsockname()[1]
        os.environ.update({k: v for k, v in _SESSION_HUB.client_env().items() if "OFFLINE" not in k})
    return _SESSION_HUB


def _set_offline(flag: bool) -> None:
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = flag
    config = __import__("sys").modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = config.HF_DATASETS_OFFLINE = flag


@pytest.fixture(scope="session")
def hub() -> Iterator[HubServer]:
    """The session's Hub-compatible server, started on first use (offline mode stays on: use
    ``online_hub`` to talk to it)."""
    if _SESSION_HUB is None:
        raise RuntimeError(
            "tests/conftest.py must call reserve_session_hub() before huggingface_hub is imported"
        )
    yield _SESSION_HUB.start()
    _SESSION_HUB.stop()


@pytest.fixture
def online_hub(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """The session's server, with Hub offline mode off for this test only."""
    from huggingface_hub import HfFileSystem, constants

    previous = constants.HF_HUB_OFFLINE
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    HfFileSystem.clear_instance_cache()  # no directory listing cached by an earlier test
    hub.clear_requests()  # the log holds this test's requests only
    _set_offline(False)
    try:
        yield hub.start()
    finally:
        _set_offline(previous)
        hub.start()
        hub.allow_all()
