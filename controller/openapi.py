"""The controller's OpenAPI 3.1 document, served at ``/openapi.json``.

Request and response bodies reuse the wire models' own JSON Schemas (pydantic), so the document
cannot drift from what the handlers accept; tests run schemathesis against it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from controller.admin_api import (
    DECISION_KINDS,
    MAX_DECISIONS_LIMIT,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    NAMESPACE_PATTERN,
    RESOURCES,
    SEVERITIES,
)
from controller.decide import CacheL1SizeInput
from shared import __version__
from shared.scaling_policy import ScalingPolicy
from shared.wire import (
    AgentReport,
    BottleneckFinding,
    Decision,
    RoutingTable,
    TuningSet,
)

REF = "#/components/schemas/{model}"
_MODELS: tuple[type[BaseModel], ...] = (
    AgentReport,
    RoutingTable,
    TuningSet,
    ScalingPolicy,
    Decision,
    BottleneckFinding,
    CacheL1SizeInput,
)


def _component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(by_alias=True, ref_template=REF, mode="validation")
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
    schemas.update(_admin_schemas())
    schemas.update(_decide_schemas())
    return schemas


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }


def _decide_schemas() -> dict[str, Any]:
    """``kind: horizontal``: the input is validated by the engine itself (the HPA spec is
    Kubernetes' own format); the document describes its shape for clients."""
    quantity = {"type": ["string", "number"], "description": "Kubernetes quantity, e.g. 250m"}
    time_value = {"type": ["number", "string"], "description": "Unix seconds or RFC 3339"}
    quantities = {"type": "object", "additionalProperties": quantity}
    pod = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "phase": {"enum": ["Pending", "Running", "Succeeded", "Failed", "Unknown"]},
            "ready": {"type": "boolean"},
            "deleted": {"type": "boolean"},
            "startTime": time_value,
            "readySince": time_value,
            "requests": quantities,
            "metrics": quantities,
        },
    }
    event = _object({"change": {"type": "integer"}, "time": time_value})
    return {
        "HorizontalDecideInput": {
            "type": "object",
            "required": ["kind", "policy", "currentReplicas"],
            "properties": {
                "kind": {"const": "horizontal"},
                "now": time_value,
                "policy": {
                    "type": "object",
                    "description": "a Kubernetes autoscaling/v2 HorizontalPodAutoscaler spec",
                },
                "currentReplicas": {"type": "integer", "minimum": 0},
                "rawRecommendation": {"type": "integer", "minimum": 0},
                "pods": {"type": "array", "items": pod},
                "objectMetrics": {"type": "object", "additionalProperties": quantity},
                "externalMetrics": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": quantity},
                },
                "history": {
                    "type": "object",
                    "properties": {
                        "recommendations": {
                            "type": "array",
                            "items": _object({"replicas": {"type": "integer"}, "time": time_value}),
                        },
                        "scaleUpEvents": {"type": "array", "items": event},
                        "scaleDownEvents": {"type": "array", "items": event},
                    },
                },
                "options": {
                    "type": "object",
                    "properties": {
                        "tolerance": {"type": "number", "minimum": 0},
                        "cpuInitializationPeriodSeconds": {"type": "number", "minimum": 0},
                        "initialReadinessDelaySeconds": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
        "RoutingDecideInput": {
            "type": "object",
            "required": ["kind", "endpoints"],
            "properties": {
                "kind": {"const": "routing"},
                "localZone": {"type": "string"},
                "callersPerZone": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 0},
                },
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["address", "zone"],
                        "properties": {
                            "address": {"type": "string"},
                            "zone": {"type": "string"},
                            "region": {"type": "string"},
                            "priority": {"type": "integer", "minimum": 0},
                            "healthy": {"type": "boolean"},
                            "weight": {"type": "number", "minimum": 0},
                            "ageSeconds": {"type": "number", "minimum": 0},
                        },
                    },
                },
                "policy": {
                    "type": "object",
                    "properties": {
                        "zoneAware": {
                            "type": "object",
                            "properties": {
                                "minClusterSize": {"type": "integer", "minimum": 0},
                                "routingEnabledPct": {"type": "number"},
                            },
                        },
                        "panicThresholdPct": {"type": "number"},
                        "overprovisioningFactor": {"type": "number"},
                        "slowStart": {
                            "type": "object",
                            "properties": {
                                "windowSeconds": {"type": "number"},
                                "aggression": {"type": "number"},
                                "minWeightPct": {"type": "number"},
                            },
                        },
                    },
                },
            },
        },
        "RoutingDecision": {
            "type": "object",
            "required": [
                "mode",
                "zoneShares",
                "priorityLoad",
                "panic",
                "endpointWeights",
                "reason",
            ],
            "properties": {
                "mode": {"enum": ["no_locality_routing", "locality_direct", "locality_residual"]},
                "zoneShares": {"type": "object", "additionalProperties": {"type": "number"}},
                "priorityLoad": {"type": "array", "items": {"type": "number"}},
                "panic": {"type": "boolean"},
                "endpointWeights": {"type": "object", "additionalProperties": {"type": "number"}},
                "reason": {"type": "string"},
            },
        },
        "HorizontalDecision": {
            "type": "object",
            "required": ["desiredReplicas", "reason", "message"],
            "properties": {
                "desiredReplicas": {"type": "integer", "minimum": 0},
                "reason": {"type": "string"},
                "message": {"type": "string"},
                "metrics": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def _admin_schemas() -> dict[str, Any]:
    optional_int = {"type": ["integer", "null"]}
    resources = _object({"cpu_millicores": optional_int, "memory_bytes": optional_int})
    kind = {"enum": ["Deployment", "StatefulSet", "Local"]}
    ref = {"namespace": {"type": "string"}, "name": {"type": "string"}, "kind": kind}
    return {
        "Resources": resources,
        "Container": _object(
            {
                "name": {"type": "string"},
                "requests": _ref("Resources"),
                "limits": _ref("Resources"),
            }
        ),
        "Pod": _object(
            {
                "name": {"type": "string"},
                "ready": {"type": "boolean"},
                "node": {"type": "string"},
                "address": {"type": "string"},
                "containers": {"type": "array", "items": _ref("Container")},
            }
        ),
        "WorkloadRef": _object(ref),
        "Workload": _object(
            {
                **ref,
                "desired_replicas": {"type": "integer"},
                "ready_replicas": {"type": "integer"},
                "pods": {"type": "array", "items": _ref("Pod")},
                "policy": {"anyOf": [_ref("ScalingPolicy"), {"type": "null"}]},
                "policy_origin": {"enum": ["api", "annotation", "file", None]},
                "policy_error": {"type": "string"},
                "paused": {"type": "boolean"},
            }
        ),
    }


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
        422: "well-formed, but the engine cannot compute a decision from it",
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


def _workload_parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": "namespace",
            "in": "path",
            "required": True,
            "description": "a Kubernetes namespace (DNS label); anything else is a 404",
            "schema": {"type": "string", "pattern": NAMESPACE_PATTERN, "maxLength": 63},
        },
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "a workload name (DNS subdomain); anything else is a 404",
            "schema": {"type": "string", "pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH},
        },
    ]


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _pause(verb: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"{verb.capitalize()} the engines' actions on one workload",
            "security": [{"bearer": []}],
            "parameters": _workload_parameters(),
            "responses": {
                "200": _json(
                    _object(
                        {"workload": _ref("WorkloadRef"), "paused": {"type": "boolean"}},
                    ),
                    f"{verb}d",
                ),
                **_errors(401, 403, 404, 503),
            },
        }
    }


def _admin_paths() -> dict[str, Any]:
    workload = "/v1/workloads/{namespace}/{name}"
    decisions_page = _object(
        {
            "decisions": {"type": "array", "items": _ref("Decision")},
            "next_cursor": {"type": ["string", "null"]},
        }
    )
    bottlenecks = _object(
        {
            "nodes": {
                "type": "array",
                "items": _object(
                    {
                        "node": {"type": "string"},
                        "zone": {"type": "string"},
                        "findings": {"type": "array", "items": _ref("BottleneckFinding")},
                    }
                ),
            }
        }
    )
    return {
        "/v1/workloads": {
            "get": {
                "summary": "The orchestrator's workloads with their policy and pause state",
                "responses": {
                    "200": _json(
                        _object({"workloads": {"type": "array", "items": _ref("Workload")}}),
                        "workloads",
                    ),
                    **_errors(503),
                },
            }
        },
        workload: {
            "get": {
                "summary": "One workload (of any kind)",
                "parameters": _workload_parameters(),
                "responses": {"200": _json(_ref("Workload"), "workload"), **_errors(404, 503)},
            }
        },
        f"{workload}/policy": {
            "put": {
                "summary": "Set how the controller may scale one workload",
                "security": [{"bearer": []}],
                "parameters": _workload_parameters(),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ScalingPolicy")}},
                },
                "responses": {
                    "200": _json(_ref("ScalingPolicy"), "the stored policy"),
                    **_errors(400, 401, 403, 404, 413, 503),
                },
            }
        },
        f"{workload}/pause": _pause("pause"),
        f"{workload}/resume": _pause("resume"),
        "/v1/decisions": {
            "get": {
                "summary": "Logged decisions, newest first, a page at a time",
                "parameters": [
                    _query("kind", {"enum": list(DECISION_KINDS)}, "decision kind"),
                    _query("target", {"type": "string"}, "exact target, e.g. ns/name"),
                    _query("reason", {"type": "string"}, "reason code"),
                    _query("since", {"type": "number"}, "decided at or after (Unix seconds)"),
                    _query("until", {"type": "number"}, "decided before (Unix seconds)"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_DECISIONS_LIMIT},
                        "page size (default 50)",
                    ),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                ],
                "responses": {"200": _json(decisions_page, "a page"), **_errors(400)},
            }
        },
        "/v1/recommendations": {
            "get": {
                "summary": "What the engines would do now: the cache L1 size, and fleet findings "
                "turned into actions",
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "recommendations": {"type": "array", "items": _ref("Decision")},
                                "actions": {"type": "array", "items": {"type": "object"}},
                                "rightsizing": {"type": "array", "items": {"type": "object"}},
                                "efficiency": {"type": "array", "items": {"type": "object"}},
                                "capacity": {"type": "array", "items": {"type": "object"}},
                                "resources_at": {"type": ["number", "null"]},
                            }
                        ),
                        "recommendations",
                    )
                },
            }
        },
        "/v1/bottlenecks": {
            "get": {
                "summary": "Open findings from every fresh agent's last report",
                "parameters": [
                    _query("resource", {"enum": list(RESOURCES)}, "only this resource"),
                    _query("severity", {"enum": list(SEVERITIES)}, "only this severity"),
                ],
                "responses": {"200": _json(bottlenecks, "findings by node"), **_errors(400)},
            }
        },
        "/v1/decide": {
            "post": {
                "summary": "Evaluate a decision input without acting",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    _ref(CacheL1SizeInput.__name__),
                                    _ref("HorizontalDecideInput"),
                                    _ref("RoutingDecideInput"),
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "oneOf": [
                                _ref("Decision"),
                                _ref("HorizontalDecision"),
                                _ref("RoutingDecision"),
                            ]
                        },
                        "the decision the engine would make",
                    ),
                    **_errors(400, 401, 403, 413, 422),
                },
            }
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
            **_admin_paths(),
        },
    }
