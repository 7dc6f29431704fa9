"""Start-up and shutdown shared by the agent and controller entry points.

One path for both: settings are built once (exit 2 naming the bad key), logging is set up,
the app is served until SIGTERM or SIGINT, and shutdown finishes inside the pod's grace period.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from aiohttp import web

from shared.config import ConfigError, Settings, load_settings, split_listen
from shared.logs import configure_logging

EXIT_CONFIG = 2
# Kubernetes' default terminationGracePeriodSeconds is 30: finish well before SIGKILL.
SHUTDOWN_TIMEOUT_SECONDS = 10.0

log = logging.getLogger(__name__)


def config_exit(error: ConfigError) -> NoReturn:
    print(f"linescale: configuration error: {error}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)


def settings_or_exit(config_path: str | None, overrides: Mapping[str, Any]) -> Settings:
    try:
        return load_settings(config_path, overrides=overrides)
    except ConfigError as error:
        config_exit(error)


def serve(
    component: str,
    settings: Settings,
    listen: str,
    build_app: Callable[[Settings], web.Application],
) -> None:
    """Build the app (config problems exit 2) and serve it until a signal asks to stop."""
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = build_app(settings)
    except ConfigError as error:
        config_exit(error)
    host, port = split_listen(listen)
    log.info("%s listening on %s", component, listen, extra={"component": component})
    web.run_app(
        app,
        host=host,
        port=port,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        print=None,
        access_log=logging.getLogger("aiohttp.access"),
        handle_signals=True,
    )
    log.info("%s stopped", component, extra={"component": component})
