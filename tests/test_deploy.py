"""docker-compose.yml: valid for Compose, complete, healthy by construction, and free of secrets.

No Docker engine runs here; `docker-compose config` (or `docker compose config`) parses and
validates the file against the Compose schema without one.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "POSTGRES_PASSWORD": "pg-test",
    "LABEL_STUDIO_DB_PASSWORD": "lsdb-test",
    "HITL_AUDIT_DB_PASSWORD": "audit-test",
    "REDIS_PASSWORD": "redis-test",
    "LABEL_STUDIO_PASSWORD": "ls-test",
    "LABEL_STUDIO_API_KEY": "0123456789abcdef0123456789abcdef01234567",
    "HITL_BASIC_AUTH_PASSWORD": "auth-test",
    "HITL_WEBHOOK_SECRET": "hook-test",
}


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif shutil.which("docker"):
        command = ["docker", "compose"]
    else:
        pytest.fail("Docker Compose is needed to validate docker-compose.yml: apt-get install docker-compose")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config():
    out = compose("config", env=SECRETS)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_validates_and_every_secret_is_required(config):
    for name in SECRETS:
        missing = compose("config", "-q", env={k: v for k, v in SECRETS.items() if k != name})
        assert missing.returncode != 0 and f"set {name}" in missing.stderr


def test_compose_runs_the_whole_stack(config):
    services = config["services"]
    assert set(services) >= {
        "label-studio",
        "postgres",
        "redis",
        "backend",
        "worker",
        "worker-slow",
        "scheduler",
        "rq-dashboard",
    }
    assert services["label-studio"]["image"].startswith("heartexlabs/label-studio:1.23")
    assert services["backend"]["deploy"]["replicas"] >= 2
    assert "--appendonly" in services["redis"]["command"]
    for name in ("label-studio", "postgres", "redis", "backend"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    assert services["label-studio"]["environment"]["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    assert services["worker"]["command"][-1] == "fast" and services["worker-slow"]["command"][-1] == "slow"
    for name in ("backend", "worker", "worker-slow", "scheduler"):  # shared state in PostgreSQL, no shared volume
        assert not services[name].get("volumes"), name
        assert services[name]["environment"]["HITL_DATABASE_URL"].startswith("postgresql://hitl:"), name
    for service in services.values():  # nothing is published beyond this host
        for port in service.get("ports", []):
            assert str(port.get("host_ip", port) if isinstance(port, dict) else port).startswith("127.0.0.1")


def test_gpu_worker_is_optional():
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gpu = raw["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_no_secret_is_written_in_the_file():
    text = (ROOT / "docker-compose.yml").read_text()
    found = re.findall(r"^\s*([A-Z_]*(?:PASSWORD|SECRET|TOKEN|API_KEY)[A-Z_]*):\s*(.+)$", text, re.M)
    for key, value in [(k, v) for k, v in found if "_ENABLE_" not in k]:  # a feature switch, not a secret
        assert value.strip().startswith("${") and ":?" in value, f"{key} must come from the environment: {value}"
    for secret in SECRETS.values():
        assert secret not in text


def test_each_service_has_its_own_credentials(config):
    services = config["services"]
    backend_env = services["backend"]["environment"]
    assert backend_env["HITL_REDIS_URL"] == "redis://:redis-test@redis:6379/0"  # Redis needs a password
    assert "--requirepass" in services["redis"]["command"]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == "redis-test"  # so the health check can ping
    assert backend_env["HITL_DATABASE_URL"].startswith("postgresql://hitl:audit-test@")  # separate roles
    assert services["label-studio"]["environment"]["POSTGRE_USER"] == "label_studio"
    assert services["label-studio"]["environment"]["POSTGRE_PASSWORD"] == "lsdb-test"
    init = (ROOT / "deploy" / "postgres-init.sh").read_text()
    assert "CREATE ROLE label_studio" in init and "CREATE ROLE hitl" in init and "REVOKE ALL" in init
    dashboard = services["rq-dashboard"]
    assert dashboard["environment"]["RQ_DASHBOARD_PASSWORD"] == "auth-test"  # the backend's basic auth
    assert dashboard["environment"]["RQ_DASHBOARD_REDIS_URL"].startswith("redis://:redis-test@")
    dockerfile = (ROOT / "deploy" / dashboard["build"]["dockerfile"]).read_text()
    assert re.search(r"rq-dashboard==\d+\.\d+\.\d+", dockerfile), "rq-dashboard is pinned"
