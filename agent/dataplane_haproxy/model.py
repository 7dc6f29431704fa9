"""What HAProxy runs, as the planner and the agent see it (pure data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ServerAdminState = Literal["ready", "drain", "maint"]
OperationalState = Literal["stopped", "starting", "running", "stopping"]


@dataclass(frozen=True, kw_only=True)
class ServerState:
    """One server of a backend as HAProxy runs it: what the planner diffs the table against.

    ``weight`` is the user weight (0..256) HAProxy was given; ``state`` the administrative
    state ``set server ... state`` sets; ``sessions`` the streams attached now (``scur``),
    which must be 0 before the server may be deleted.
    """

    name: str
    address: str  # host:port, IPv6 hosts in brackets
    weight: int
    state: ServerAdminState
    backup: bool = False
    sessions: int = 0


@dataclass(frozen=True, kw_only=True)
class ServerView(ServerState):
    """A server as ``read_back`` reports it: the planner's view plus what HAProxy measured."""

    operational: OperationalState = "running"
    status: str = ""  # show stat "status": UP, DRAIN, MAINT, no check, ...
    requests: int = 0  # req_tot: HTTP requests sent to it since it was added
    errors: int = 0  # hrsp_5xx + econ + eresp
    response_ms: int = 0  # rtime: average over its last 1024 requests
