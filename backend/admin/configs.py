"""``hitl configs validate|load``: check labeling configs, and set a project up in one idempotent command.

``load`` creates the project (or updates its labeling config), connects this backend as its ML
backend (with basic auth when configured), gives the backend's webhook the shared-secret header,
and switches the queue to uncertainty sampling. Running it twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backend.labeling import TaskSpec, UnsupportedConfig, parse_label_config
from backend.models.plugin_model import plugin_serves
from backend.plugin import load_plugin_class
from backend.server.auth import SECRET_HEADER
from backend.settings import Settings
from backend.stores.labelstudio import LabelStudioClient
from backend.stores.registry import Registry


def validate_file(path: Path) -> TaskSpec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UnsupportedConfig(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return parse_label_config(text)
    except UnsupportedConfig as exc:
        raise UnsupportedConfig(f"{path}: {exc}") from None


@dataclass
class LoadResult:
    project_id: int
    created: bool
    config_updated: bool
    ml_backend_id: int
    webhook_id: int
    spec: dict[str, Any]
    model: str = ""  # the project's model plug-in ("" = the deployment's: HITL_MODEL, else the bundled encoder)


def load(
    settings: Settings, ls: LabelStudioClient, path: Path, title: str, backend_url: str, model: str | None = None
) -> LoadResult:
    """``model``: the project's own model plug-in (``package.module:Class``; "" for the deployment's),
    checked here (importable, the interface's methods) before anything is written."""
    spec = validate_file(path)
    if model:
        load_plugin_class(model)
        if not plugin_serves(spec):
            raise UnsupportedConfig(
                f"a model plug-in classifies text with one label per task; {path} is {spec.kind.value}"
            )
    config = Path(path).read_text(encoding="utf-8")
    project = ls.find_project(title)
    created = project is None
    updated = False
    if project is None:
        project_id = ls.create_project(title, config)
    else:
        project_id = int(project["id"])
        if (project.get("label_config") or "").strip() != config.strip():
            ls.update_label_config(project_id, config)
            updated = True
    auth = None
    if settings.auth_enabled:
        assert settings.basic_auth_user and settings.basic_auth_password
        auth = (settings.basic_auth_user, settings.basic_auth_password.get_secret_value())
    backend_url = backend_url.rstrip("/")
    backend_id = ls.connect_backend(project_id, backend_url, basic_auth=auth)
    headers = {SECRET_HEADER: settings.webhook_secret.get_secret_value()} if settings.webhook_secret else {}
    webhook_id = ls.ensure_webhook(project_id, backend_url + "/webhook", headers)
    ls.sdk.projects.update(id=project_id, sampling="Uncertainty sampling")
    registry = Registry.from_settings(settings)
    if model is not None:  # the operator's choice, kept with the project's versions
        registry.set_model(project_id, model)
    return LoadResult(
        project_id,
        created,
        updated,
        backend_id,
        webhook_id,
        {
            "kind": spec.kind.value,
            "labels": list(spec.labels),
            "data_key": spec.data_key,
            "rationale": spec.rationale_name,
        },
        registry.model(project_id),
    )


def as_dict(result: LoadResult) -> dict[str, Any]:
    return asdict(result)
