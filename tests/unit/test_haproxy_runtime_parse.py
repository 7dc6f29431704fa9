"""Parsing HAProxy 2.6 Runtime API answers. The fixtures are answers a real HAProxy 2.6.12
gave (``show servers state ls_a``, ``show stat ls_a 4 -1``), trimmed to a few rows."""

from __future__ import annotations

import pytest

from agent.dataplane_haproxy.runtime import (
    RuntimeAPIError,
    SocketAddress,
    admin_state_name,
    parse_servers_state,
    parse_socket_address,
    parse_stat_csv,
)

SERVERS_STATE = (
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 ls_a 2 s3 127.0.0.1 2 0 1 1 93 1 0 2 0 0 0 0 - 9003 - 0 0 - - 0\n"
    "3 ls_a 1 b1 127.0.0.1 0 1 10 10 58 1 0 0 0 0 0 0 - 9004 - 0 0 - - 0\n"
    "3 ls_a 3 v6 ::1 0 1 3 3 0 1 0 0 0 0 0 0 - 9009 - 0 0 - - 0\n"
    "\n"
)

STAT_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
    "hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,"
    "cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,"
    "ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,"
    "check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,"
    "conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,"
    "srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,"
    "used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,"
    "agg_check_status,-,ssl_sess\n"
)
STAT_ROW_DRAIN = (
    "ls_a,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,20,1,0,,,35,,,1,3,1,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,"
    "0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:9001,,http,,,,,,,,0,0,0,,,0,0,0,0,0,0,0,0,0,0,0,"
    "20,,,,-,0\n"
)


def test_parse_servers_state_reads_columns_by_header() -> None:
    rows = parse_servers_state(SERVERS_STATE)

    assert [(r.server, r.address, r.user_weight, r.state, r.operational) for r in rows] == [
        ("s3", "127.0.0.1:9003", 1, "ready", "running"),
        ("b1", "127.0.0.1:9004", 10, "maint", "stopped"),
        ("v6", "[::1]:9009", 3, "maint", "stopped"),
    ]
    assert {row.backend for row in rows} == {"ls_a"}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("Can't find backend.\n\n", id="unknown-backend"),
        pytest.param("2\n# be_id be_name\n", id="unknown-format-version"),
        pytest.param("", id="empty-answer"),
    ],
)
def test_parse_servers_state_refuses_what_is_not_format_1(answer: str) -> None:
    with pytest.raises(RuntimeAPIError):
        parse_servers_state(answer)


def test_parse_servers_state_error_carries_haproxys_message() -> None:
    with pytest.raises(RuntimeAPIError) as caught:
        parse_servers_state("Can't find backend.\n\n", "show servers state nope")

    assert caught.value.message == "Can't find backend."
    assert caught.value.command == "show servers state nope"


def test_parse_stat_csv_types_the_columns_used() -> None:
    (row,) = parse_stat_csv(STAT_HEADER + STAT_ROW_DRAIN + "\n")

    assert (row.proxy, row.name, row.kind, row.status) == ("ls_a", "s1", 2, "DRAIN")
    assert (row.weight, row.user_weight, row.active, row.backup) == (20, 20, True, False)
    assert (row.sessions, row.requests, row.errors) == (0, 0, 0)
    assert row.address == "127.0.0.1:9001"


def test_parse_stat_csv_refuses_an_error_answer() -> None:
    with pytest.raises(RuntimeAPIError, match="No such proxy"):
        parse_stat_csv("No such proxy.\n\n")


@pytest.mark.parametrize(
    ("bits", "state"),
    [
        pytest.param(0x00, "ready", id="none"),
        pytest.param(0x01, "maint", id="forced-maint"),
        pytest.param(0x08, "drain", id="forced-drain"),
        pytest.param(0x10, "drain", id="inherited-drain"),
        pytest.param(0x09, "maint", id="maint-wins-over-drain"),
        pytest.param(0x20, "maint", id="resolver-maint"),
    ],
)
def test_admin_state_name(bits: int, state: str) -> None:
    assert admin_state_name(bits) == state


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        pytest.param("/run/haproxy.sock", SocketAddress(path="/run/haproxy.sock"), id="unix"),
        pytest.param("unix@/run/h:1.sock", SocketAddress(path="/run/h:1.sock"), id="unix-prefix"),
        pytest.param("127.0.0.1:9999", SocketAddress(host="127.0.0.1", port=9999), id="tcp"),
        pytest.param("ipv4@10.0.0.1:9999", SocketAddress(host="10.0.0.1", port=9999), id="ipv4@"),
        pytest.param("[::1]:9999", SocketAddress(host="::1", port=9999), id="tcp-ipv6"),
    ],
)
def test_parse_socket_address(address: str, expected: SocketAddress) -> None:
    assert parse_socket_address(address) == expected
