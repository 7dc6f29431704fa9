"""The agent's HAProxy dataplane: a local HAProxy 2.6 driven through its Runtime API.

``render`` writes the config HAProxy starts from (frontends and empty backends) and plans the
Runtime API commands that turn what HAProxy runs into what a routing table says; ``runtime``
talks to the stats socket; ``driver`` ties them together for the agent. HAProxy is never
reloaded: servers are added, re-weighted, drained and deleted at run time.
"""

from agent.dataplane_haproxy.driver import ApplyResult, HAProxyDataplane, ServiceOutcome
from agent.dataplane_haproxy.model import ServerAdminState, ServerState, ServerView
from agent.dataplane_haproxy.render import (
    DesiredServer,
    PlannedCommand,
    desired_servers,
    plan,
    plan_steps,
    render_config,
)
from agent.dataplane_haproxy.runtime import (
    RuntimeAPI,
    RuntimeAPIError,
    RuntimeAPIUnreachableError,
    ServersStateRow,
    StatRow,
)

__all__ = [
    "ApplyResult",
    "DesiredServer",
    "HAProxyDataplane",
    "PlannedCommand",
    "RuntimeAPI",
    "RuntimeAPIError",
    "RuntimeAPIUnreachableError",
    "ServerAdminState",
    "ServerState",
    "ServerView",
    "ServersStateRow",
    "ServiceOutcome",
    "StatRow",
    "desired_servers",
    "plan",
    "plan_steps",
    "render_config",
]
