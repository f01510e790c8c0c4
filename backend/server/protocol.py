"""Validation of Label Studio's request bodies: a malformed request gets a 4xx that says what is wrong."""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import BadRequest, UnprocessableEntity

from backend.ids import ProjectId, parse_project_id
from backend.labeling import TaskSpec, UnsupportedConfig, parse_label_config


def json_object(request: Request) -> dict[str, Any]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # json's decoder recurses once per level of nesting
        raise BadRequest("the request body is nested too deeply") from None
    if body is None:
        raise BadRequest("the request body must be JSON (Content-Type: application/json)")
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def project_of(body: dict[str, Any]) -> ProjectId:
    if "project" not in body or body["project"] in (None, ""):
        raise BadRequest("'project' is missing: Label Studio sends it as '<id>.<created-at>'")
    try:
        return parse_project_id(body["project"])
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def spec_of(config: Any, field: str) -> TaskSpec:
    if not isinstance(config, str) or not config.strip():
        raise BadRequest(f"'{field}' is missing: send the project's labeling config XML")
    try:
        return parse_label_config(config)
    except UnsupportedConfig as exc:
        raise UnprocessableEntity(f"unsupported labeling config: {exc}") from None


def tasks_of(body: dict[str, Any], limit: int) -> list[Any]:
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise BadRequest("'tasks' must be a list of Label Studio tasks")
    if len(tasks) > limit:
        raise BadRequest(f"{len(tasks)} tasks in one request; the limit is {limit} (HITL_MAX_TASKS_PER_REQUEST)")
    return tasks
