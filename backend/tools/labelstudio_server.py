"""A real Label Studio 1.23 on 127.0.0.1, for end-to-end tests, benchmarks and local trials.

It lives in its own virtualenv (about 1 GB), cached outside the clone in ``~/.cache/hitl`` (or
``HITL_LS_VENV``) and rebuilt when missing. Each start uses a throwaway data directory with
SQLite, creates an admin and a legacy API token non-interactively (passed in its environment,
never on its command line, where ``ps`` shows them to every user), and turns off everything that
would call out to the internet. A start refuses a port something already listens on (it would
otherwise take that server for its own) and a data folder another instance holds (its lock).
Loopback ML backend and webhook URLs need ``USE_DEFAULT_BANNED_SUBNETS=false`` (Label Studio's
SSRF protection refuses them otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from backend.tools.bench.common import free_port

LS_VERSION = "1.23.2"


class LabelStudioUnavailable(RuntimeError):
    """Label Studio could not be installed or started; the message says what to check."""


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "hitl" / f"label-studio-{LS_VERSION}"
    return Path(os.environ.get("HITL_LS_VENV", default))


def ensure_installed(log: bool = True) -> Path:
    """The label-studio executable, installing label-studio==LS_VERSION into its venv if needed."""
    venv = venv_dir()
    exe = venv / "bin" / "label-studio"
    stamp = venv / ".hitl-installed"
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == LS_VERSION:
        return exe
    if log:
        print(f"installing label-studio=={LS_VERSION} into {venv} (once; about 1 GB)", file=sys.stderr)
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"label-studio=={LS_VERSION}"],
            check=True,
            timeout=1800,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise LabelStudioUnavailable(
            f"could not install label-studio=={LS_VERSION} into {venv}: {exc}\n"
            + detail.decode(errors="replace")[-2000:]
        ) from exc
    stamp.write_text(LS_VERSION)
    return exe


CREDENTIALS = "hitl-credentials.json"
LOCK = "hitl-label-studio.lock"


def ensure_port_free(port: int) -> None:
    """Refuse a port something listens on: its answers to /health would pass for ours."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no owner
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise LabelStudioUnavailable(
                f"port {port} on 127.0.0.1 is already in use by another process: stop it, or start Label "
                "Studio with another --port"
            ) from None


def _database_env(url: str | None) -> dict[str, str]:
    """Label Studio's database settings (``DJANGO_DB`` and its ``POSTGRE_*`` variables)."""
    if not url:
        return {"DJANGO_DB": "sqlite"}
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return {
        "DJANGO_DB": "default",
        "POSTGRE_NAME": parts.path.lstrip("/"),
        "POSTGRE_USER": parts.username or "postgres",
        "POSTGRE_PASSWORD": parts.password or "",
        "POSTGRE_HOST": parts.hostname or "127.0.0.1",
        "POSTGRE_PORT": str(parts.port or 5432),
    }


def lock_data_dir(data_dir: Path) -> int:
    """An exclusive lock on ``data_dir`` (a file descriptor, inherited by Label Studio so the lock
    lives as long as it does); LabelStudioUnavailable when another instance holds it."""
    fd = os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise LabelStudioUnavailable(
            f"another Label Studio uses {data_dir} (launcher pid {holder}): stop it first, or use another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _credentials(data_dir: Path) -> tuple[str, str, str]:
    """(username, password, token) of this data folder: made once and kept beside Label Studio's
    database (readable by the owner only), so a restart on the same folder uses the same token."""
    path = data_dir / CREDENTIALS
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["username"], saved["password"], saved["token"]
    fresh = {"username": "admin@hitl.local", "password": secrets.token_urlsafe(12), "token": secrets.token_hex(20)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(fresh))
    return fresh["username"], fresh["password"], fresh["token"]


@dataclass
class LocalLabelStudio:
    url: str
    token: str
    username: str
    password: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _own_data_dir: bool = False
    _lock_fd: int | None = None

    @classmethod
    def start(
        cls,
        port: int | None = None,
        data_dir: Path | None = None,
        timeout_s: float = 240,
        database_url: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> LocalLabelStudio:
        """``database_url``: a ``postgresql://`` database for Label Studio (as its production set-up
        runs it); default SQLite in ``data_dir``. ``environment``: more of Label Studio's settings
        (its feature flags, say)."""
        exe = ensure_installed()
        port = port or free_port()
        ensure_port_free(port)
        own = data_dir is None
        data_dir = Path(data_dir or tempfile.mkdtemp(prefix="hitl-ls-"))
        data_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = lock_data_dir(data_dir)
        username, password, token = _credentials(data_dir)
        env = {
            **os.environ,
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "USE_DEFAULT_BANNED_SUBNETS": "false",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false",
            **_database_env(database_url),
            **(environment or {}),
            "PYTHONUNBUFFERED": "1",
            # the admin's credentials by environment: a command line is visible to every user (ps)
            "LABEL_STUDIO_USERNAME": username,
            "LABEL_STUDIO_PASSWORD": password,
            "LABEL_STUDIO_USER_TOKEN": token,
        }
        log_path = data_dir / "label-studio.log"
        cmd = [
            str(exe),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--enable-legacy-api-token",
        ]
        try:
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(lock_fd,)
                )
        except BaseException:
            os.close(lock_fd)
            raise
        server = cls(f"http://127.0.0.1:{port}", token, username, password, data_dir, process, log_path, own, lock_fd)
        server.wait_healthy(timeout_s)
        return server

    def wait_healthy(self, timeout_s: float, refused_for_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        refused_since: float | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabelStudioUnavailable(
                    f"Label Studio exited with {self.process.returncode} while starting; log tail:\n{self.log_tail()}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    headers = {"Authorization": f"Token {self.token}"}
                    status = requests.get(self.url + "/api/projects", headers=headers, timeout=5).status_code
                    if status == 200:
                        return
                    refused_since = refused_since or time.monotonic()
                    if status == 401 and time.monotonic() - refused_since > refused_for_s:
                        self.stop()
                        raise LabelStudioUnavailable(
                            f"Label Studio started on {self.data_dir} but refuses the token in "
                            f"{self.data_dir / CREDENTIALS}: that data folder was created with other credentials. "
                            "Use its own token, or start with a new --data-dir"
                        )
            time.sleep(0.5)
        self.stop()
        raise LabelStudioUnavailable(f"Label Studio was not healthy within {timeout_s}s; log tail:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="label-studio-local",
        description=f"Install and run Label Studio {LS_VERSION} on 127.0.0.1 for trials and tests.",
    )
    parser.add_argument("action", choices=["install", "start"], help="install only, or start and wait (Ctrl-C stops)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/label-studio"),
        help="Label Studio's database, uploads and credentials; kept across restarts (default: var/label-studio)",
    )
    args = parser.parse_args(argv)
    if args.action == "install":
        print(ensure_installed())
        return 0
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops Label Studio too, never orphans it
    try:
        server = LocalLabelStudio.start(port=args.port, data_dir=args.data_dir)
    except LabelStudioUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Label Studio {LS_VERSION} at {server.url} (data in {server.data_dir.resolve()}, kept)")
    print(f"  login {server.username} / {server.password}")
    print(f"  API token (legacy): {server.token}")
    print("  export HITL_LABEL_STUDIO_URL=" + server.url + " HITL_LABEL_STUDIO_API_KEY=" + server.token)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
