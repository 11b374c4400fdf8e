"""Talking to the Hub: endpoint, token, timeouts, and Hub errors as one-line user errors.

The token comes from HF_TOKEN or the client's login (`hf auth login`) and is only ever handed to
huggingface_hub; no message here includes it.
"""

from __future__ import annotations

import contextlib
import os

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
