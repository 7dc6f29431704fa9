"""Reading a command's JSON input (a file, or ``-`` for stdin), bounded, for the controller's
commands (``decide``, ``report``): a file that cannot be read or is not JSON ends the command
with exit code 2 and the reason, as a usage error."""

from __future__ import annotations

import json
import sys
from typing import NoReturn


def usage_error(command: str, message: str) -> NoReturn:
    print(f"linescale {command}: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_json_input(path: str, *, command: str, max_bytes: int) -> object:
    """The parsed JSON of ``path`` (``-``: stdin), at most ``max_bytes`` long."""
    try:
        if path == "-":
            text = sys.stdin.read(max_bytes + 1)
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read(max_bytes + 1)
    except OSError as error:
        usage_error(command, f"cannot read {path}: {error.strerror}")
    except UnicodeDecodeError as error:
        usage_error(command, f"{path} is not UTF-8: {error}")
    if len(text) > max_bytes:
        usage_error(command, f"{path} is larger than {max_bytes} bytes")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        usage_error(command, f"{path} is not JSON: {error}")
