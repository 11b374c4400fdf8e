"""Talking to the Hub: endpoint, token, timeouts, and Hub errors as one-line user errors.

The token comes from HF_TOKEN or the client's login (`hf auth login`) and is only ever handed to
huggingface_hub; no message here includes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import get_session

from ovbench.errors import InputError

# Seconds to wait for the Hub to answer the first request; after that answer, transfers get longer.
PROBE_TIMEOUT = float(os.environ.get("OVBENCH_HUB_TIMEOUT", "10"))
TRANSFER_TIMEOUT = 300.0


def endpoint() -> str:
    """HF_ENDPOINT as set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def require_token() -> str:
    token = get_token()
    if not token:
        raise InputError("no Hugging Face token: set HF_TOKEN to a token with write access, "
                        "or run `hf auth login`")
    return token


def set_timeouts(first_answer: bool) -> None:
    """Short timeouts until the Hub has answered once (no waiting on a dead host), then long ones."""
    long = TRANSFER_TIMEOUT if first_answer else PROBE_TIMEOUT
    get_session().timeout = httpx2.Timeout(PROBE_TIMEOUT, read=long, write=long)


@contextlib.contextmanager
def hub_errors(repo_id: str):
    """Hub and network failures as one line naming the repository and what to do."""
    where = endpoint()
    try:
        yield
    except RepositoryNotFoundError as exc:
        raise InputError(f"no repository {repo_id} at {where}, or the token may not read it "
                        f"(HTTP {exc.response.status_code})") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        hint = {401: "the token was refused: set HF_TOKEN to a valid token",
                403: f"the token may not write to {repo_id}: use a token with write access"}.get(status, "")
        detail = (exc.server_message or str(exc).splitlines()[0]).strip()
        raise InputError(f"the Hub at {where} answered HTTP {status} for {repo_id}: {detail}"
                        + (f"; {hint}" if hint else "")) from None
    except (httpx2.TransportError, OfflineModeIsEnabled) as exc:
        raise InputError(f"cannot reach the Hugging Face Hub at {where} ({type(exc).__name__}); "
                        "check the network, HF_ENDPOINT or HF_HUB_OFFLINE") from None
    except LocalEntryNotFoundError:
        raise InputError(f"cannot reach the Hub at {where} (or HF_HUB_OFFLINE is set) and {repo_id} is "
                        "not in the local cache (HF_HOME); connect once to download it") from None


def connect(repo_id: str) -> HfApi:
    """An authenticated client whose Hub has answered (one request, short timeout, no retries)."""
    api = HfApi(endpoint=endpoint(), token=require_token())
    set_timeouts(first_answer=False)
    with hub_errors(repo_id):
        api.whoami()
    set_timeouts(first_answer=True)
    return api


@contextlib.contextmanager
def build_folder(to: Path | None):
    """A temporary folder to build a repository in, beside `to` (so that delivering it there is a
    rename); removed afterwards unless it was delivered there."""
    parent = Path(to).absolute().parent if to is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".ovbench-publish-", dir=parent))
    try:
        yield build
    finally:
        if build.exists():
            shutil.rmtree(build)


def deliver(build: Path, to: Path | None, api, repo_id: str, repo_type: str, private: bool,
            update_privacy: bool, message: str) -> str:
    """A repository built locally, moved to `to` (replacing what was there), or pushed as it is
    (the Hub's files it no longer has are deleted); returns where it went."""
    if to is not None:
        to = Path(to)
        if to.is_dir():
            shutil.rmtree(to)
        elif to.exists():
            to.unlink()
        build.rename(to)
        return str(to)
    with hub_errors(repo_id):
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if private and update_privacy:  # create_repo leaves an existing repository's visibility
            api.update_repo_settings(repo_id, repo_type=repo_type, private=True)
        api.upload_folder(repo_id=repo_id, repo_type=repo_type, folder_path=build, delete_patterns="*",
                          commit_message=message)
    return f"{endpoint()}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
