"""The backend's HTTP API as OpenAPI 3.1: what Label Studio (and our own tools) may send.

Served at ``GET /openapi.json``; the fuzz tests generate requests from these schemas. Schemas
describe the shapes Label Studio 1.23 sends (``ml/api_connector.py``), loosely where it is loose:
extra keys are allowed everywhere, as Label Studio adds fields between versions.
"""

from __future__ import annotations

from typing import Any

from backend import __version__

_PROJECT = {"type": "string", "description": "'<project id>.<created-at unix time>', as Label Studio sends it"}
_TASK = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "data": {"type": "object", "additionalProperties": True},
        "meta": {"type": "object"},
        "annotations": {"type": "array"},
        "predictions": {"type": "array"},
    },
    "required": ["id", "data"],
}
_ERROR = {
    "description": "what is wrong with the request",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}
        }
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


def _post(summary: str, schema: dict[str, Any], ok: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": _body(schema),
            "responses": {"200": _ok(ok), "400": _ERROR, "401": _ERROR, "413": _ERROR, "422": _ERROR},
        }
    }


REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {
    "/setup": {
        "type": "object",
        "properties": {
            "project": _PROJECT,
            "schema": {"type": "string"},
            "hostname": {"type": "string"},
            "access_token": {"type": "string"},
            "extra_params": {"type": ["object", "null"]},
        },
        "required": ["project", "schema"],
    },
    "/predict": {
        "type": "object",
        "properties": {
            "tasks": {"type": "array", "items": _TASK},
            "project": _PROJECT,
            "label_config": {"type": "string"},
            "params": {"type": "object"},
        },
        "required": ["tasks", "project", "label_config"],
    },
    "/webhook": {
        "type": "object",
        "properties": {
            "action": {
                "type": "string",
                "enum": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING"],
            },
            "project": {"type": "object", "properties": {"id": {"type": "integer"}}},
            "annotation": {"type": "object", "properties": {"id": {"type": "integer"}}},
            "annotations": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["action", "project"],
    },
    "/train": {
        "type": "object",
        "properties": {"project": _PROJECT, "annotations": {"type": "array"}},
        "required": ["project"],
    },
    "/validate": {"type": "object", "properties": {"config": {"type": "string"}}, "required": ["config"]},
}


def openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": {"get": {"summary": "liveness; never needs credentials", "responses": {"200": _ok("UP")}}},
        "/ready": {
            "get": {
                "summary": "can corrections become versions now? encoder, Redis, workers, LS token",
                "responses": {
                    "200": _ok("{status: ready, ...}"),
                    "401": _ERROR,
                    "503": _ok("{status: not ready, and what is missing}"),
                },
            }
        },
        "/setup": _post(
            "the model version serving this project's config", REQUEST_SCHEMAS["/setup"], "{model_version}"
        ),
        "/predict": _post(
            "one prediction per task, in order",
            REQUEST_SCHEMAS["/predict"],
            "{results: [{result, score, model_version}]}",
        ),
        "/webhook": _post(
            "Label Studio webhook event: enqueues a coalesced retrain",
            REQUEST_SCHEMAS["/webhook"],
            "what happened to the event",
        ),
        "/train": _post(
            "Label Studio's training trigger (same as a webhook)",
            REQUEST_SCHEMAS["/train"],
            "what happened to the request",
        ),
        "/validate": _post("can this labeling config be served?", REQUEST_SCHEMAS["/validate"], "{status, kind}"),
        "/versions": {
            "get": {
                "summary": "model versions of a project",
                "parameters": [{"name": "project", "in": "query", "schema": _PROJECT}],
                "responses": {"200": _ok("{versions}"), "400": _ERROR, "401": _ERROR},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        "/openapi.json": {"get": {"summary": "this description", "responses": {"200": _ok("OpenAPI 3.1")}}},
        "/dashboard": {
            "get": {
                "summary": "the projects at a glance (HTML, refreshes itself)",
                "responses": {"200": {"description": "text/html"}},
            }
        },
        "/dashboard/{project}": {
            "get": {
                "summary": "one project's report, live (HTML, refreshes itself)",
                "parameters": [{"name": "project", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "text/html"}, "404": _ERROR},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "hitl-backend: Label Studio ML backend", "version": __version__},
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "webhookSecret": {"type": "apiKey", "in": "header", "name": "X-Hitl-Webhook-Secret"},
            }
        },
        "security": [{"basic": []}, {"webhookSecret": []}],
        "paths": paths,
    }
