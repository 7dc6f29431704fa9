"""The controller's OpenAPI 3.1 document, served at ``/openapi.json``.

Request and response bodies reuse the wire models' own JSON Schemas (pydantic), so the document
cannot drift from what the handlers accept; tests run schemathesis against it.
"""

from __future__ import annotations

from typing import Any

from shared import __version__
from shared.wire import AgentReport, RoutingTable, TuningSet, WireModel

REF = "#/components/schemas/{model}"
_MODELS: tuple[type[WireModel], ...] = (AgentReport, RoutingTable, TuningSet)


def _component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=REF, mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    schemas["PushAnswer"] = {
        "type": "object",
        "required": ["status", "message", "agents"],
        "properties": {
            "status": {"enum": ["applied", "stale"]},
            "message": {"type": "string"},
            "agents": {"type": "array", "items": {"type": "object"}},
        },
    }
    return schemas


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _errors(*codes: int) -> dict[str, Any]:
    described = {
        400: "malformed body: the fields at fault are named",
        401: "no bearer token",
        403: "wrong token",
        404: "not found",
        413: "body too large",
        429: "limit reached",
        503: "not ready",
    }
    return {str(code): _json(_ref("Error"), described[code]) for code in codes}


def _push(model: str, what: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"The {what} the controller holds",
            "responses": {"200": _json(_ref(model), what), **_errors(404)},
        },
        "put": {
            "summary": f"Set the {what} and push it to every fresh agent",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(model)}},
            },
            "responses": {
                "200": _json(_ref("PushAnswer"), "applied or stale (older or equal version)"),
                **_errors(400, 401, 403, 413),
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    status_ok = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Linescale controller", "version": __version__},
        "components": {
            "schemas": _component_schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": _json(status_ok, "alive")}}
            },
            "/readyz": {
                "get": {"summary": "Readiness", "responses": {"200": _json(status_ok, "ready")}}
            },
            "/v1/status": {
                "get": {
                    "summary": "Controller, agents (zone, health, last seen, stale) and versions",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["controller", "summary", "agents"],
                                "properties": {
                                    "controller": {"type": "object"},
                                    "summary": {"type": "object"},
                                    "agents": {"type": "array", "items": {"type": "object"}},
                                },
                            },
                            "status",
                        )
                    },
                }
            },
            "/v1/agents": {
                "get": {
                    "summary": "Known agents with their last report",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["agents"],
                                "properties": {
                                    "agents": {"type": "array", "items": {"type": "object"}}
                                },
                            },
                            "agents",
                        )
                    },
                }
            },
            "/v1/agents/{node}/report": {
                "post": {
                    "summary": "An agent's periodic report",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "node",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("AgentReport")}},
                    },
                    "responses": {
                        "200": _json({"type": "object"}, "accepted"),
                        **_errors(400, 401, 403, 413, 429),
                    },
                }
            },
            "/v1/routing": _push("RoutingTable", "routing table"),
            "/v1/tuning": _push("TuningSet", "tuning set"),
            "/v1/cache/stats": {
                "get": {
                    "summary": "Fleet cache hit ratios per namespace and level, and L1 sizing",
                    "responses": {"200": _json({"type": "object"}, "fleet cache statistics")},
                }
            },
            "/v1/cache/invalidate": {
                "post": {
                    "summary": "Invalidate a prefix or tag in a namespace on every fresh agent",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["namespace"],
                                    "properties": {
                                        "namespace": {"type": "string"},
                                        "prefix": {"type": "string"},
                                        "tag": {"type": "string"},
                                    },
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"type": "object"}, "per-agent outcomes"),
                        **_errors(400, 401, 403, 503),
                    },
                }
            },
        },
    }
