"""Schemathesis against the controller's own /openapi.json: no input produces a 5xx or a
response that violates the document."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from controller.openapi import openapi_document

from messages import TOKEN
from services import LinescaleFactory, LinescaleServer

schema = schemathesis.openapi.from_dict(openapi_document())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def controller(linescale_factory: LinescaleFactory) -> LinescaleServer:
    return linescale_factory("controller", env={"LINESCALE_TOKEN": TOKEN})


def test_served_document_is_the_one_tested(controller: LinescaleServer) -> None:
    with urllib.request.urlopen(f"{controller.url}/openapi.json", timeout=5) as response:
        assert json.load(response) == json.loads(json.dumps(openapi_document()))


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_causes_a_server_error_or_breaks_the_schema(
    case: Any, controller: LinescaleServer
) -> None:
    case.call_and_validate(
        base_url=controller.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=CHECKS,
        timeout=10,
    )
