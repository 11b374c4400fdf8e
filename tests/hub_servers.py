"""Hub servers on loopback for the publishing tests; every one stops by itself.

- `OlahMirror`: the real `olah` Hub mirror (PyPI) serving local git repositories, so that
  `datasets.load_dataset("org/name")` and `snapshot_download` go over HTTP as against the Hub.
  Runs under `timeout` and dies with the test process (parent-death signal).
- `LoopbackHubStandIn`: NOT a Hub. A stand-in that answers the few endpoints huggingface_hub's
  upload path calls, for dataset and model repositories (whoami, tree, create, settings,
  preupload, LFS batch + basic PUT, commit, resolve) and records every request, so tests can
  check the call sequence and what was committed. It runs in a daemon thread of the test process.
- `SilentServer`: accepts connections and never answers (a Hub that hangs).
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

SERVER_LIFETIME_S = 900  # hard stop for a mirror a crashed test run could leave behind


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def git_repository(files_from: Path, repo: Path) -> None:
    """`repo` as a git repository on branch main holding the files of `files_from`."""
    shutil.copytree(files_from, repo)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "publish"]):
        subprocess.run(["git", *command], cwd=repo, env=env, check=True)


class OlahMirror:
    """olah serving `<root>/mirrors/datasets/ORG/NAME` git repositories, offline, on loopback."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def add_dataset(self, repo_id: str, layout: Path) -> None:
        git_repository(layout, self.root / "mirrors" / "datasets" / repo_id)

    def add_model(self, repo_id: str, layout: Path) -> None:
        git_repository(layout, self.root / "mirrors" / "models" / repo_id)

    def __enter__(self):
        (self.root / "mirrors" / "datasets").mkdir(parents=True, exist_ok=True)
        (self.root / "olah.toml").write_text(
            f'[basic]\nhost = "127.0.0.1"\nport = {self.port}\nrepos-path = "./repos"\n'
            f'mirror-netloc = "127.0.0.1:{self.port}"\nmirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
            f'mirrors-path = ["./mirrors"]\n[accessibility]\noffline = true\n')
        olah = Path(sys.executable).with_name("olah-cli")
        self.log = open(self.root / "olah.log", "w")
        self.process = subprocess.Popen(
            ["timeout", str(SERVER_LIFETIME_S), str(olah), "-c", "olah.toml"], cwd=self.root,
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/datasets/none/none/revision/main", timeout=2)
            except urllib.error.HTTPError:
                return self  # it answers
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("olah did not start: " + (self.root / "olah.log").read_text()[-2000:])
                time.sleep(0.2)
            else:
                return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


class LoopbackHubStandIn:
    """A stand-in for the Hub's upload endpoints (see the module docstring); not a Hub."""

    def __init__(self, token: str):
        self.token = token
        self.requests: list[tuple[str, str]] = []
        self.repos: dict[str, dict[str, bytes]] = {}   # repo id → path → bytes
        self.private: dict[str, bool] = {}
        self.lfs: dict[str, bytes] = {}
        self.commits: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def calls(self) -> list[str]:
        """Request kinds in order, e.g. ["whoami", "tree", "create", ...]."""
        return [kind for _, kind in self.requests]

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body=b"", headers=None):
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {standin.token}":
                    return True
                self._send(401, {"error": "Invalid credentials"}, {"X-Error-Code": "InvalidCredentials"})
                return False

            def _route(self):
                path = urlparse(self.path).path
                parts = path.strip("/").split("/")
                if path == "/api/whoami-v2":
                    return "whoami", None
                if path == "/api/repos/create":
                    return "create", None
                if path == "/api/validate-yaml":
                    return "validate-yaml", None
                if parts[:2] in (["api", "datasets"], ["api", "models"]) and len(parts) >= 5:
                    return parts[4], "/".join(parts[2:4])  # tree, preupload, commit, settings
                if parts[0] == "lfs-upload":
                    return "lfs-put", parts[1]
                # Dataset repositories live under /datasets/ORG/NAME, model repositories at /ORG/NAME.
                repo = parts[1:] if parts[0] == "datasets" else parts
                if path.endswith(".git/info/lfs/objects/batch"):
                    return "lfs-batch", "/".join(repo[:2])[: -len(".git")]
                if len(repo) >= 5 and repo[2] == "resolve":
                    return "resolve", "/".join(repo[:2])
                return "unknown", None

            def _handle(self):
                kind, arg = self._route()
                standin.requests.append((f"{self.command} {self.path}", kind))
                if kind == "lfs-put":
                    data = self._body()
                    if hashlib.sha256(data).hexdigest() != arg:
                        return self._send(400, {"error": "sha256 mismatch"})
                    standin.lfs[arg] = data
                    return self._send(200, {})
                if not self._authorised():
                    return None
                body = self._body()
                if kind == "whoami":
                    return self._send(200, {"type": "user", "name": "standin-user", "orgs": [],
                                            "auth": {"accessToken": {"role": "write"}}})
                if kind == "validate-yaml":
                    return self._send(200, {"errors": [], "warnings": []})
                if kind == "create":
                    request = json.loads(body)
                    repo_id = f"{request['organization']}/{request['name']}"
                    if repo_id in standin.repos:
                        return self._send(409, {"error": "already exists", "url": repo_id})
                    standin.repos[repo_id] = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
                    standin.private[repo_id] = request.get("visibility", "public") != "public"
                    return self._send(200, {"url": f"{standin.url}/datasets/{repo_id}"})
                files = standin.repos.get(arg)
                if files is None:
                    return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                if kind == "tree":
                    return self._send(200, [{"type": "file", "path": name, "size": len(data),
                                             "oid": hashlib.sha1(data).hexdigest()}
                                            for name, data in sorted(files.items())])
                if kind == "resolve":
                    name = urlparse(self.path).path.split("/resolve/", 1)[1].split("/", 1)[1]
                    if name not in files:
                        return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                    return self._send(200, files[name], {"ETag": f'"{hashlib.sha1(files[name]).hexdigest()}"',
                                                         "X-Repo-Commit": "0" * 40})
                if kind == "preupload":
                    return self._send(200, {"files": [
                        {"path": f["path"],
                         "uploadMode": "lfs" if f["path"].endswith((".parquet", ".safetensors")) else "regular",
                         "shouldIgnore": False} for f in json.loads(body)["files"]]})
                if kind == "lfs-batch":
                    objects = json.loads(body)["objects"]
                    return self._send(200, {"transfer": "basic", "objects": [
                        {"oid": o["oid"], "size": o["size"],
                         "actions": {"upload": {"href": f"{standin.url}/lfs-upload/{o['oid']}"}}}
                        for o in objects]})
                if kind == "commit":
                    return self._commit(arg, files, body)
                if kind == "settings":
                    standin.private[arg] = json.loads(body).get("visibility", "public") != "public"
                    return self._send(200, {})
                return self._send(404, {"error": f"the stand-in does not serve {self.path}"})

            def _commit(self, repo_id, files, body):
                commit = {"repo": repo_id, "added": [], "deleted": []}
                for line in body.decode().splitlines():
                    entry = json.loads(line)
                    value = entry.get("value", {})
                    if entry["key"] == "file":
                        files[value["path"]] = base64.b64decode(value["content"])
                        commit["added"].append(value["path"])
                    elif entry["key"] == "lfsFile":
                        if value["oid"] not in standin.lfs:
                            return self._send(400, {"error": f"LFS object of {value['path']} never uploaded"})
                        files[value["path"]] = standin.lfs[value["oid"]]
                        commit["added"].append(value["path"])
                    elif entry["key"] in ("deletedFile", "deletedFolder"):
                        files.pop(value["path"], None)
                        commit["deleted"].append(value["path"])
                standin.commits.append(commit)
                return self._send(200, {"success": True, "commitOid": f"{len(standin.commits):040x}",
                                        "commitUrl": f"{standin.url}/datasets/{repo_id}/commit/"
                                                     f"{len(standin.commits):040x}"})

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        return Handler


class SilentServer:
    """Accepts TCP connections and never answers; counts them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while True:
            try:
                self.connections.append(self.sock.accept()[0])
            except OSError:
                return

    def __exit__(self, *exc):
        self.sock.close()
        for connection in self.connections:
            connection.close()
