"""The README's main job (`hitl run`) against a real Label Studio, for end-to-end tests: started
in its own process group with a data folder of the test's, stopped whatever happens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from backend.tools.bench.common import free_port
from tests.support.services import ROOT, hitl, wait_until


@dataclass
class MainJob:
    url: str
    env: dict[str, str]
    folder: Path  # HITL_DATA_DIR

    def hitl(self, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        """A `hitl` command against this main job's settings."""
        return subprocess.run(hitl(*args), env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def load_project(self, config: Path, title: str, rows: list[dict[str, Any]], *options: str) -> int:
        """`hitl configs load` (with ``options``) then `hitl import` of ``rows``: the README's set-up;
        the project's id."""
        loaded = self.hitl(
            "configs", "load", str(config), "--project", title, "--backend-url", self.url, *options, timeout=120
        )
        assert loaded.returncode == 0, loaded.stderr
        project = int(json.loads(loaded.stdout)["project_id"])
        tasks = self.folder.parent / f"tasks-{project}.jsonl"
        tasks.write_text("".join(json.dumps(row) + "\n" for row in rows))
        imported = self.hitl("import", str(tasks), "--project", str(project), "--quiet")
        assert imported.returncode == 0 and f"{len(rows)} of {len(rows)} tasks imported" in imported.stdout, (
            imported.stdout + imported.stderr
        )
        return project

    def errors(self) -> list[str]:
        """The log's ERROR lines: a failure's evidence."""
        return [
            line
            for line in (self.folder.parent / "run.log").read_text(errors="replace").splitlines()
            if "ERROR" in line
        ]


@contextmanager
def main_job(label_studio: Any, folder: Path, **settings: str) -> Iterator[MainJob]:
    """`hitl run` with its data under ``folder``/var, talking to ``label_studio``; ``settings``:
    more HITL_* variables."""
    port = free_port()
    env = {
        **os.environ,
        "HITL_PORT": str(port),
        "HITL_DATA_DIR": str(folder / "var"),
        "HITL_REGISTRY_DIR": str(folder / "var" / "registry"),
        "HITL_LABEL_STUDIO_URL": label_studio.url,
        "HITL_LABEL_STUDIO_API_KEY": label_studio.token,
        **settings,
    }
    if "HITL_REDIS_URL" not in settings:
        env.pop("HITL_REDIS_URL", None)  # the embedded Redis, as the README's quick start runs it
    log = open(folder / "run.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "run"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=2).json()["encoder_ready"], 180, "the main job")
        yield MainJob(url, env, folder / "var")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
