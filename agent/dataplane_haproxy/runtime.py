"""An async client of HAProxy's Runtime API (the ``stats socket``, HAProxy 2.6).

One command per connection, in HAProxy's non-interactive mode: it answers, then closes. That
costs a connect per command (cheap on a unix socket) but keeps every answer unambiguous and
needs no prompt parsing; HAProxy allows 10 concurrent CLI connections by default
(``stats maxconn``), and the agent sends its commands one after the other.

Errors: HAProxy answers every command with text, refusals included (``No such server.``,
``Only servers in maintenance mode can be deleted.``). Change commands whose answer is not
one of the known successes raise :class:`RuntimeAPIError` carrying HAProxy's message; a socket
that cannot be reached or does not answer in time raises :class:`RuntimeAPIUnreachableError`.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from agent.dataplane_haproxy.model import OperationalState, ServerAdminState

__all__ = [
    "SERVERS_STATE_FORMAT",
    "RuntimeAPI",
    "RuntimeAPIError",
    "RuntimeAPIUnreachableError",
    "ServersStateRow",
    "SocketAddress",
    "StatRow",
    "admin_state_name",
    "parse_servers_state",
    "parse_socket_address",
    "parse_stat_csv",
]

SERVERS_STATE_FORMAT = "1"  # the only ``show servers state`` format HAProxy 2.6 writes

# What HAProxy 2.6 answers when a change command succeeds (src/server.c, src/cli.c).
_SUCCESS_ANSWERS = frozenset({"", "New server registered.", "Server deleted."})
_TCP_ADDRESS = re.compile(r"^(?:ipv4@|ipv6@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:]+):(?P<port>\d+)$")

# srv_admin_state bits (HAProxy include/haproxy/server-t.h SRV_ADMF_*).
ADMIN_FORCED_MAINT = 0x01
ADMIN_INHERITED_MAINT = 0x02
ADMIN_CONFIG_MAINT = 0x04
ADMIN_FORCED_DRAIN = 0x08
ADMIN_INHERITED_DRAIN = 0x10
ADMIN_RESOLVER_MAINT = 0x20
ADMIN_HOSTNAME_MAINT = 0x40
_ANY_MAINT = (
    ADMIN_FORCED_MAINT
    | ADMIN_INHERITED_MAINT
    | ADMIN_CONFIG_MAINT
    | ADMIN_RESOLVER_MAINT
    | ADMIN_HOSTNAME_MAINT
)
_ANY_DRAIN = ADMIN_FORCED_DRAIN | ADMIN_INHERITED_DRAIN
_OPERATIONAL: Final[dict[int, OperationalState]] = {
    0: "stopped",
    1: "starting",
    2: "running",
    3: "stopping",
}


class RuntimeAPIError(Exception):
    """HAProxy refused a command; ``message`` is HAProxy's own answer."""

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        self.message = message
        super().__init__(f"{command!r}: {message}")


class RuntimeAPIUnreachableError(RuntimeAPIError):
    """The socket could not be reached, or HAProxy did not answer within the timeout."""


@dataclass(frozen=True)
class SocketAddress:
    """Where the stats socket listens: a unix path, or a TCP host and port."""

    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return bool(self.path)


def parse_socket_address(address: str) -> SocketAddress:
    """``/run/haproxy.sock`` (or ``unix@...``) is a unix socket; ``host:port`` is TCP."""
    if address.startswith("unix@"):
        return SocketAddress(path=address.removeprefix("unix@"))
    match = _TCP_ADDRESS.match(address)
    if match is None or address.startswith(("/", ".")):
        if not address:
            raise ValueError("the HAProxy stats socket address is empty")
        return SocketAddress(path=address)
    return SocketAddress(host=match["host"].strip("[]"), port=int(match["port"]))


def admin_state_name(admin_state: int) -> ServerAdminState:
    """``srv_admin_state`` bits as the state ``set server ... state`` speaks of."""
    if admin_state & _ANY_MAINT:
        return "maint"
    if admin_state & _ANY_DRAIN:
        return "drain"
    return "ready"


def _int(value: str) -> int:
    """A numeric field of HAProxy output; empty (not applicable) reads as 0."""
    value = value.strip()
    return int(value) if value and value not in {"-", "-1"} else 0


def join_address(host: str, port: int) -> str:
    """``host:port``, brackets around IPv6 hosts (the form routing tables use)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ServersStateRow:
    """One row of ``show servers state`` (format version 1; HAP-MGMT 'show servers state')."""

    backend_id: int
    backend: str
    server_id: int
    server: str
    host: str  # "-" while a hostname is unresolved
    port: int
    operational_state: int  # 0 stopped, 1 starting, 2 running, 3 stopping
    admin_state: int  # SRV_ADMF_* bits
    user_weight: int
    initial_weight: int
    seconds_since_change: int
    fqdn: str

    @property
    def address(self) -> str:
        return join_address(self.host, self.port)

    @property
    def state(self) -> ServerAdminState:
        return admin_state_name(self.admin_state)

    @property
    def operational(self) -> OperationalState:
        return _OPERATIONAL.get(self.operational_state, "stopped")


@dataclass(frozen=True)
class StatRow:
    """The typed columns of one ``show stat`` CSV row that the agent uses (HAP-MGMT 9.1)."""

    proxy: str  # pxname
    name: str  # svname: server name, or FRONTEND / BACKEND
    kind: int  # type: 0 frontend, 1 backend, 2 server, 3 listener
    status: str
    weight: int  # effective weight
    user_weight: int  # uweight
    active: bool  # act: 1 for a non-backup server
    backup: bool  # bck
    queued: int  # qcur
    sessions: int  # scur
    total_sessions: int  # stot
    selected: int  # lbtot: times the load balancer picked it
    requests: int  # req_tot
    responses_5xx: int  # hrsp_5xx
    connect_errors: int  # econ
    response_errors: int  # eresp
    response_ms: int  # rtime: average of the last 1024 requests
    address: str  # addr

    @property
    def errors(self) -> int:
        """5xx answers, failed connects and broken responses: what EndpointStats counts."""
        return self.responses_5xx + self.connect_errors + self.response_errors

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> StatRow:
        def get(name: str) -> str:
            return fields.get(name) or ""

        return cls(
            proxy=get("pxname"),
            name=get("svname"),
            kind=_int(get("type")),
            status=get("status"),
            weight=_int(get("weight")),
            user_weight=_int(get("uweight")),
            active=get("act") == "1",
            backup=get("bck") == "1",
            queued=_int(get("qcur")),
            sessions=_int(get("scur")),
            total_sessions=_int(get("stot")),
            selected=_int(get("lbtot")),
            requests=_int(get("req_tot")),
            responses_5xx=_int(get("hrsp_5xx")),
            connect_errors=_int(get("econ")),
            response_errors=_int(get("eresp")),
            response_ms=_int(get("rtime")),
            address=get("addr"),
        )


def _refusal(command: str, text: str) -> RuntimeAPIError:
    message = " ".join(line.strip() for line in text.strip().splitlines()) or "(empty answer)"
    return RuntimeAPIError(command, message)


def parse_servers_state(text: str, command: str = "show servers state") -> list[ServersStateRow]:
    """Parse ``show servers state``: a version line, a ``#`` header, one line per server.

    Columns are looked up by the header's names, so a later format that appends columns
    still parses; a different format version is refused.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != SERVERS_STATE_FORMAT:
        raise _refusal(command, text)
    if len(lines) < 2 or not lines[1].startswith("#"):
        raise _refusal(command, text)
    columns = lines[1].lstrip("#").split()
    rows: list[ServersStateRow] = []
    for line in lines[2:]:
        values = line.split()
        if len(values) < len(columns):
            raise RuntimeAPIError(command, f"short 'show servers state' row: {line!r}")
        field = dict(zip(columns, values, strict=False))
        rows.append(
            ServersStateRow(
                backend_id=_int(field["be_id"]),
                backend=field["be_name"],
                server_id=_int(field["srv_id"]),
                server=field["srv_name"],
                host=field["srv_addr"],
                port=_int(field["srv_port"]),
                operational_state=_int(field["srv_op_state"]),
                admin_state=_int(field["srv_admin_state"]),
                user_weight=_int(field["srv_uweight"]),
                initial_weight=_int(field["srv_iweight"]),
                seconds_since_change=_int(field["srv_time_since_last_change"]),
                fqdn=field.get("srv_fqdn", "-"),
            )
        )
    return rows


def parse_stat_csv(text: str, command: str = "show stat") -> list[StatRow]:
    """Parse ``show stat`` CSV: a ``# pxname,svname,...`` header, then one row per proxy or
    server. Columns are read by name (the list grows between versions)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise _refusal(command, text)
    reader = csv.reader([lines[0].removeprefix("# "), *lines[1:]])
    header = next(reader)
    return [StatRow.from_fields(dict(zip(header, row, strict=False))) for row in reader]


class RuntimeAPI:
    """Talks to one HAProxy's stats socket (``level admin`` for changes)."""

    def __init__(self, address: str, timeout_seconds: float = 2.0) -> None:
        self.address = parse_socket_address(address)
        self.timeout_seconds = timeout_seconds

    async def raw(self, command: str) -> str:
        """Send one command and return HAProxy's whole answer, refusals included."""
        if "\n" in command or ";" in command:
            # Both separate commands on the CLI: one call must be exactly one command.
            raise ValueError(f"one command per call, got {command!r}")
        try:
            async with asyncio.timeout(self.timeout_seconds):
                if self.address.is_unix:
                    reader, writer = await asyncio.open_unix_connection(self.address.path)
                else:
                    reader, writer = await asyncio.open_connection(
                        self.address.host, self.address.port
                    )
                try:
                    writer.write(command.encode() + b"\n")
                    await writer.drain()
                    answer = await reader.read()
                finally:
                    writer.close()
                    await writer.wait_closed()
        except TimeoutError:
            raise RuntimeAPIUnreachableError(
                command, f"no answer within {self.timeout_seconds:g} s"
            ) from None
        except OSError as error:
            raise RuntimeAPIUnreachableError(command, str(error)) from None
        return answer.decode(errors="replace")

    async def execute(self, command: str) -> None:
        """Send a change command (``set``/``add``/``del server``...); raise on a refusal."""
        answer = await self.raw(command)
        if answer.strip() not in _SUCCESS_ANSWERS:
            raise _refusal(command, answer)

    async def show_backends(self) -> list[str]:
        command = "show backend"
        answer = await self.raw(command)
        lines = [line.strip() for line in answer.splitlines() if line.strip()]
        if not lines or lines[0] != "# name":
            raise _refusal(command, answer)
        return lines[1:]

    async def show_servers_state(self, backend: str | None = None) -> list[ServersStateRow]:
        command = "show servers state" + (f" {backend}" if backend else "")
        return parse_servers_state(await self.raw(command), command)

    async def show_stat(self, backend: str | None = None) -> list[StatRow]:
        """Server rows only (type mask 4), of one backend or of all."""
        command = f"show stat {backend or -1} 4 -1"
        return parse_stat_csv(await self.raw(command), command)
