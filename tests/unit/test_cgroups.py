"""Kubelet cgroup paths -> pods and containers, and the v2 files of the fixture trees."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agent.observe.cgroups import (
    container_ref,
    find_kube_cgroups,
    parse_flat_keyed,
    parse_memory_max,
    read_cgroup,
    read_kube_cgroups,
    unified_root,
)
from agent.observe.model import CgroupSample, ContainerRef, Pressure, Runtime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "observe"
CGROUP_A = FIXTURES / "node-a" / "sys" / "fs" / "cgroup"
CGROUP_B = FIXTURES / "node-b" / "sys" / "fs" / "cgroup"
CGROUP_PARTIAL = FIXTURES / "partial" / "sys" / "fs" / "cgroup"

UID = "8a3b2c1d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"
SD_UID = UID.replace("-", "_")
CID = "52c6070f3f7035310a27bda65a416b771881023d317c41dfb9ebf79f446b7b5f"
CRIO_ID = "2774b8ce4c802d7917867006c1de93fda2b9ab82c65ad20df796fc07eddb388d"
GUARANTEED_ID = "01b25cf55f0da34883df1b7379015a085c23aafa9a50f908ad46ad819ce566ad"
STATIC_UID = "d41d8cd98f00b204e9800998ecf8427e"  # static pods: a config hash, no dashes

BURSTABLE_SD = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{SD_UID}.slice"
BESTEFFORT_SD = f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{SD_UID}.slice"
GUARANTEED_SD = f"/kubepods.slice/kubepods-pod{SD_UID}.slice"


def ref(
    container_id: str = "", runtime: Runtime = "", qos: str = "burstable", uid: str = UID
) -> ContainerRef:
    return ContainerRef(pod_uid=uid, container_id=container_id, runtime=runtime, qos=qos)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # systemd driver
        pytest.param(
            f"{BURSTABLE_SD}/cri-containerd-{CID}.scope",
            ref(CID, "containerd"),
            id="systemd-containerd-burstable",
        ),
        pytest.param(
            f"{GUARANTEED_SD}/cri-containerd-{CID}.scope",
            ref(CID, "containerd", "guaranteed"),
            id="systemd-containerd-guaranteed-directly-under-kubepods",
        ),
        pytest.param(
            f"{BESTEFFORT_SD}/crio-{CID}.scope",
            ref(CID, "cri-o", "besteffort"),
            id="systemd-crio-besteffort",
        ),
        pytest.param(
            f"{BESTEFFORT_SD}/crio-conmon-{CID}.scope",
            ref("", "cri-o", "besteffort"),
            id="systemd-crio-conmon-is-the-pod-not-a-container",
        ),
        pytest.param(
            f"{BURSTABLE_SD}/crio-{CID}.scope/container",
            ref(CID, "cri-o"),
            id="systemd-crio-nested-container-subgroup",
        ),
        pytest.param(f"{BURSTABLE_SD}/docker-{CID}.scope", ref(CID, "docker"), id="systemd-docker"),
        pytest.param(BURSTABLE_SD, ref(), id="systemd-pod-level"),
        pytest.param(
            f"/kubepods.slice/kubepods-pod{STATIC_UID}.slice",
            ref(qos="guaranteed", uid=STATIC_UID),
            id="systemd-static-pod-hash-uid",
        ),
        pytest.param(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
            f"kubelet-kubepods-besteffort-pod{SD_UID}.slice/cri-containerd-{CID}.scope",
            ref(CID, "containerd", "besteffort"),
            id="systemd-cgroup-root-prefix-kind",
        ),
        pytest.param(
            f"/kubepods.slice/kubepods-pod{SD_UID.upper()}.slice",
            ref(qos="guaranteed"),
            id="systemd-uppercase-uid-normalised",
        ),
        # cgroupfs driver
        pytest.param(
            f"/kubepods/burstable/pod{UID}/{CID}", ref(CID), id="cgroupfs-containerd-burstable"
        ),
        pytest.param(
            f"/kubepods/pod{UID}/{CID}", ref(CID, qos="guaranteed"), id="cgroupfs-guaranteed"
        ),
        pytest.param(
            f"/kubepods/besteffort/pod{UID}/{CID}",
            ref(CID, qos="besteffort"),
            id="cgroupfs-docker-besteffort-bare-id",
        ),
        pytest.param(
            f"/kubepods/burstable/pod{UID}/crio-{CID}", ref(CID, "cri-o"), id="cgroupfs-crio"
        ),
        pytest.param(
            f"/kubepods/burstable/pod{UID}/crio-conmon-{CID}",
            ref("", "cri-o"),
            id="cgroupfs-crio-conmon",
        ),
        pytest.param(f"/kubepods/burstable/pod{UID}", ref(), id="cgroupfs-pod-level"),
        pytest.param(
            f"/kubepods/burstable/pod{UID}/not-a-container",
            ref(),
            id="unknown-child-of-pod-maps-to-pod",
        ),
        # not a pod
        pytest.param("/system.slice/kubelet.service", None, id="junk-system-service"),
        pytest.param("/", None, id="junk-root"),
        pytest.param("", None, id="junk-empty"),
        pytest.param("/kubepods.slice", None, id="junk-kubepods-root"),
        pytest.param("/kubepods.slice/kubepods-burstable.slice", None, id="junk-qos-slice"),
        pytest.param("/kubepods/burstable", None, id="junk-cgroupfs-qos"),
        pytest.param(f"/user.slice/pod{UID}/{CID}", None, id="junk-pod-outside-kubepods"),
        pytest.param("/kubepods.slice/kubepods-podnot_hex!.slice", None, id="junk-bad-uid"),
        pytest.param(f"/kubepods/burstable/pod{UID}x", None, id="junk-uid-trailing-garbage"),
    ],
)
def test_container_ref(path: str, expected: ContainerRef | None) -> None:
    assert container_ref(path) == expected


# --- cgroup v2 files --------------------------------------------------------------------------


def test_flat_keyed() -> None:
    assert parse_flat_keyed("usage_usec 10\nnr_periods 3\n\n") == {
        "usage_usec": 10,
        "nr_periods": 3,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("max\n", None, id="unlimited"),
        pytest.param("536870912\n", 536870912, id="limit"),
    ],
)
def test_memory_max(text: str, expected: int | None) -> None:
    assert parse_memory_max(text) == expected


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        pytest.param(CGROUP_A, CGROUP_A, id="pure-v2"),
        pytest.param(CGROUP_B, CGROUP_B / "unified", id="hybrid-uses-unified"),
        pytest.param(FIXTURES / "nowhere", FIXTURES / "nowhere", id="missing-stays"),
    ],
)
def test_unified_root(root: Path, expected: Path) -> None:
    assert unified_root(root) == expected


def test_walk_finds_pods_and_containers_but_not_conmon_or_system_slices() -> None:
    errors: Counter[str] = Counter()
    found = [(path, c.ref.qos) for path, c in find_kube_cgroups(CGROUP_A, errors)]
    besteffort = (
        "/kubepods.slice/kubepods-besteffort.slice/"
        "kubepods-besteffort-pod5e7a9d10_2b3c_4d5e_8f60_718293a4b5c6.slice"
    )
    guaranteed = "/kubepods.slice/kubepods-podc0ffee00_1111_4222_8333_444455556666.slice"
    assert found == [
        (besteffort, "besteffort"),
        (f"{besteffort}/crio-{CRIO_ID}.scope", "besteffort"),
        (BURSTABLE_SD, "burstable"),
        (f"{BURSTABLE_SD}/cri-containerd-{CID}.scope", "burstable"),
        (guaranteed, "guaranteed"),
        (f"{guaranteed}/cri-containerd-{GUARANTEED_ID}.scope", "guaranteed"),
    ]
    assert not errors


def test_throttled_burstable_container_reads_every_file() -> None:
    errors: Counter[str] = Counter()
    path = f"{BURSTABLE_SD}/cri-containerd-{CID}.scope"
    container = ref(CID, "containerd")
    assert read_cgroup(CGROUP_A, path, container, errors) == CgroupSample(
        path=path,
        container=container,
        usage_usec=4000000000,
        nr_periods=1000,
        nr_throttled=250,
        throttled_usec=5000000,
        memory_current_bytes=2147483648,
        memory_max_bytes=None,
        oom=0,
        oom_kill=0,
        pressure={
            "cpu": Pressure(12.5, 10.2, 8.0, 98765432, 3.1, 2.5, 2.0, 23456789),
            "memory": Pressure(0, 0, 0, 0, 0, 0, 0, 0),
            "io": Pressure(0, 0, 0, 0, 0, 0, 0, 0),
        },
    )
    assert not errors


def test_node_a_samples_limits_oom_kills_and_missing_pressure() -> None:
    errors: Counter[str] = Counter()
    rows = [
        (
            s.container.qos,
            s.container.container_id[:6],
            s.memory_max_bytes,
            s.oom,
            s.oom_kill,
            s.nr_throttled,
            sorted(s.pressure),
        )
        for s in read_kube_cgroups(CGROUP_A, errors)
    ]
    assert rows == [
        ("besteffort", "", None, 0, 0, 0, ["cpu", "io", "memory"]),
        ("besteffort", "2774b8", None, 0, 0, 0, ["cpu", "memory"]),  # no io.pressure file
        ("burstable", "", None, 0, 0, 260, ["cpu", "io", "memory"]),
        ("burstable", "52c607", None, 0, 0, 250, ["cpu", "io", "memory"]),
        ("guaranteed", "", 536870912, 2, 1, 0, ["cpu", "io", "memory"]),
        ("guaranteed", "01b25c", 536870912, 2, 1, 0, ["cpu", "io", "memory"]),
    ]
    assert not errors


def test_hybrid_cgroupfs_docker_tree_has_only_v2_core_files() -> None:
    """On a hybrid host memory and cpu quota live in v1: those fields stay None, no error."""
    errors: Counter[str] = Counter()
    samples = read_kube_cgroups(CGROUP_B, errors)
    assert [(s.path, s.container.qos, s.usage_usec, s.nr_periods) for s in samples] == [
        (
            "/kubepods/burstable/pod3d6f0a2e-9b1c-4f7e-a5d8-2c4b6e8f0a1c",
            "burstable",
            12100000,
            None,
        ),
        (
            "/kubepods/burstable/pod3d6f0a2e-9b1c-4f7e-a5d8-2c4b6e8f0a1c/"
            "f1eea04075846c58e8e504256e23e469fba45b4d8e85b31bc869bafb3ac8b0bd",
            "burstable",
            12000000,
            None,
        ),
        ("/kubepods/podb7e1c9a4-6d2f-4a3b-8e5c-1f9d7a2b4c6e", "guaranteed", 80500000, None),
        (
            "/kubepods/podb7e1c9a4-6d2f-4a3b-8e5c-1f9d7a2b4c6e/"
            "8ecd8bff8c0c02d999b707d71ac82ca9a4079ad6bbf550e614c67f7346f70e60",
            "guaranteed",
            80000000,
            None,
        ),
    ]
    assert all(s.memory_current_bytes is None and s.oom_kill is None for s in samples)
    assert not errors


def test_garbled_memory_max_is_counted_and_the_rest_still_read() -> None:
    errors: Counter[str] = Counter()
    pod, sample = read_kube_cgroups(CGROUP_PARTIAL, errors)
    assert pod.container.container_id == ""
    assert pod.usage_usec is None  # a pod directory with no files: nothing, and no error
    assert (sample.memory_max_bytes, sample.memory_current_bytes, sample.usage_usec) == (
        None,
        4096000,
        6000000,
    )
    assert sorted(sample.pressure) == ["cpu"]
    assert errors == {"cgroup": 1}


def test_missing_cgroup_root_gives_nothing_and_no_error() -> None:
    errors: Counter[str] = Counter()
    assert read_kube_cgroups(FIXTURES / "nowhere", errors) == []
    assert not errors


def test_walk_is_bounded_in_depth(tmp_path: Path) -> None:
    deep = tmp_path / "kubepods" / "kube-a" / "kube-b" / "kube-c" / "kube-d" / "kube-e" / "kube-f"
    (deep / f"pod{UID}").mkdir(parents=True)
    assert find_kube_cgroups(tmp_path, Counter()) == []
