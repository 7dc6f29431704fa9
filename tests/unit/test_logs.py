"""Logging: JSON lines off a terminal, text on one, extra fields carried through."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shared.logs import configure_logging


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_when_not_on_a_terminal_with_extra_fields() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream)
    logging.getLogger("linescale.test").info("agent %s joined", "n1", extra={"node": "n1"})
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "agent n1 joined"
    assert (entry["level"], entry["logger"], entry["node"]) == ("info", "linescale.test", "n1")


def test_text_on_a_terminal() -> None:
    stream = FakeTerminal()
    configure_logging("info", "auto", stream)
    logging.getLogger("linescale.test").warning("plain")
    assert "WARNING" in stream.getvalue()
    assert not stream.getvalue().startswith("{")


def test_level_filters_and_exceptions_are_included() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    log = logging.getLogger("linescale.test")
    log.info("hidden")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    (line,) = stream.getvalue().splitlines()
    assert "ValueError: boom" in json.loads(line)["exc"]
