"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection``.

One controller replica holds the Lease (``holderIdentity``) and renews it every retry period;
the others read it and take it over only when it has expired or been released. Every write
carries the ``resourceVersion`` that was read, so of two candidates racing for the same Lease
the API server lets exactly one through (the other gets 409 and stays a follower).

As in client-go, expiry is measured on the local clock from when this replica first *observed*
the current record, not from the holder's ``renewTime``: clocks of different nodes never have
to agree. A leader that cannot renew for ``renew_deadline_seconds`` stops calling itself leader
(``is_leader``), which happens before any other replica may take over
(``lease_duration_seconds``, counted from the last renewal it saw). ``release()`` on shutdown
clears the holder so a successor takes over at its next try instead of after a lease duration.

``decide_lease`` is the pure part, table-tested; ``LeaseElector`` does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

T = TypeVar("T")
LeaseAction = Literal["acquire", "renew", "wait"]


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What a Lease says, times as POSIX seconds."""

    holder: str
    lease_duration_seconds: int = 0
    acquire_time: float | None = None
    renew_time: float | None = None
    transitions: int = 0
    resource_version: str = ""


def decide_lease(
    lease: LeaseRecord | None,
    identity: str,
    now: float,
    duration: float,
    *,
    observed_at: float | None = None,
) -> tuple[LeaseAction, str]:
    """Whether ``identity`` should acquire the Lease, renew it, or wait, and why.

    The Lease lasts its own ``leaseDurationSeconds`` (``duration`` when it has none) from
    ``observed_at``, the local time this exact record was first seen, or else from its
    ``renewTime``.
    """
    if lease is None:
        return "acquire", "no lease yet"
    if lease.holder == identity:
        return "renew", "we hold the lease"
    if not lease.holder:
        return "acquire", "the lease was released"
    since = observed_at if observed_at is not None else lease.renew_time
    if since is None:
        return "acquire", f"the lease of {lease.holder} was never renewed"
    expires = since + (lease.lease_duration_seconds or duration)
    if now >= expires:
        return "acquire", f"the lease of {lease.holder} expired {now - expires:.1f}s ago"
    return "wait", f"held by {lease.holder} for {expires - now:.1f}s more"


def _seconds(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def lease_record(lease: Any) -> LeaseRecord:
    """A ``V1Lease`` as a ``LeaseRecord``."""
    spec = lease.spec
    version = lease.metadata.resource_version if lease.metadata is not None else None
    if spec is None:
        return LeaseRecord(holder="", resource_version=version or "")
    return LeaseRecord(
        holder=spec.holder_identity or "",
        lease_duration_seconds=spec.lease_duration_seconds or 0,
        acquire_time=_seconds(spec.acquire_time),
        renew_time=_seconds(spec.renew_time),
        transitions=spec.lease_transitions or 0,
        resource_version=version or "",
    )


class LeaseElector:
    """Campaigns for and renews one Lease. ``run()`` until cancelled, then ``release()``."""

    def __init__(
        self,
        api: client.CoordinationV1Api,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_seconds: int = 15,
        renew_deadline_seconds: float = 10,
        retry_period_seconds: float = 2,
        clock: Callable[[], float] = time.time,
        request_timeout_seconds: float | None = None,
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        if not 0 < retry_period_seconds < renew_deadline_seconds < lease_duration_seconds:
            raise ValueError(
                "need 0 < retry_period_seconds < renew_deadline_seconds < lease_duration_seconds"
            )
        self._api = api
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._duration = int(lease_duration_seconds)
        self._renew_deadline = renew_deadline_seconds
        self._retry_period = retry_period_seconds
        self._clock = clock
        self._timeout = request_timeout_seconds or max(0.5, renew_deadline_seconds / 2)
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None  # our last successful acquire or renew
        self._lease: Any = None  # the last V1Lease read or written, to update from

    @property
    def is_leader(self) -> bool:
        """True while we hold the Lease and renewed it within the renew deadline."""
        return (
            self._renewed_at is not None and self._clock() - self._renewed_at < self._renew_deadline
        )

    @property
    def observed(self) -> LeaseRecord | None:
        return self._observed

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args, _request_timeout=self._timeout)

    def _observe(self, lease: Any, now: float) -> LeaseRecord:
        record = lease_record(lease)
        if self._observed is None or record.resource_version != self._observed.resource_version:
            self._observed, self._observed_at = record, now
        self._lease = lease
        return record

    def _lose(self, why: str) -> None:
        if self._renewed_at is not None:
            log.warning(
                "%s lost the lease %s/%s: %s", self.identity, self._namespace, self._name, why
            )
        self._renewed_at = None

    def _spec(
        self, now: float, acquired: float | None, transitions: int, holder: str, duration: int
    ) -> client.V1LeaseSpec:
        at = datetime.fromtimestamp(now, UTC)
        return client.V1LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=duration,
            acquire_time=datetime.fromtimestamp(acquired, UTC) if acquired is not None else at,
            renew_time=at,
            lease_transitions=transitions,
        )

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the Lease, then create, take over or renew it if we may. True when
        we hold it afterwards. Failures are logged and count as not holding it."""
        now = self._clock()
        try:
            current = await self._call(self._api.read_namespaced_lease, self._name, self._namespace)
        except ApiException as error:
            if error.status != 404:
                log.warning(
                    "cannot read lease %s/%s: %s", self._namespace, self._name, error.reason
                )
                return self.is_leader
            current = None
        except Exception as error:
            log.warning("cannot read lease %s/%s: %s", self._namespace, self._name, error)
            return self.is_leader
        if current is None:
            return await self._create(now)
        record = self._observe(current, now)
        action, reason = decide_lease(
            record, self.identity, now, self._duration, observed_at=self._observed_at
        )
        if action == "wait":
            self._lose(reason)
            return False
        transitions = record.transitions + (record.holder != self.identity)
        acquired = record.acquire_time if action == "renew" else now
        lease = current
        lease.spec = self._spec(now, acquired, transitions, self.identity, self._duration)
        try:
            updated = await self._call(
                self._api.replace_namespaced_lease, self._name, self._namespace, lease
            )
        except Exception as error:
            status = error.status if isinstance(error, ApiException) else None
            if status == 409:
                self._lose("another candidate wrote the lease first")
                return False
            log.warning("cannot %s lease %s/%s: %s", action, self._namespace, self._name, error)
            return self.is_leader
        self._observe(updated, now)
        if action == "acquire" or self._renewed_at is None:
            log.info(
                "%s leads via lease %s/%s (%s)", self.identity, self._namespace, self._name, reason
            )
        self._renewed_at = now
        return True

    async def _create(self, now: float) -> bool:
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self._name, namespace=self._namespace),
            spec=self._spec(now, now, 0, self.identity, self._duration),
        )
        try:
            created = await self._call(self._api.create_namespaced_lease, self._namespace, lease)
        except Exception as error:
            status = error.status if isinstance(error, ApiException) else None
            if status != 409:  # 409 AlreadyExists: another candidate created it first
                log.warning("cannot create lease %s/%s: %s", self._namespace, self._name, error)
            self._lose("another candidate created the lease first")
            return False
        self._observe(created, now)
        self._renewed_at = now
        log.info("%s leads via new lease %s/%s", self.identity, self._namespace, self._name)
        return True

    async def run(self) -> None:
        """Campaign, then renew, every retry period until cancelled. Does not release: call
        ``release()`` after cancelling (for example in the app's cleanup)."""
        while True:
            await self.try_acquire_or_renew()
            await asyncio.sleep(self._retry_period)

    async def release(self) -> bool:
        """Give the Lease up if we hold it: clear the holder so a successor need not wait for
        it to expire. True when released (or there was nothing to release)."""
        self._renewed_at = None
        for _attempt in range(3):
            record, lease = self._observed, self._lease
            if record is None or lease is None or record.holder != self.identity:
                return True
            now = self._clock()
            lease.spec = self._spec(now, now, record.transitions, "", 1)
            try:
                released = await self._call(
                    self._api.replace_namespaced_lease, self._name, self._namespace, lease
                )
            except ApiException as error:
                if error.status != 409:
                    log.warning(
                        "cannot release lease %s/%s: %s", self._namespace, self._name, error.reason
                    )
                    return False
                try:  # a renewal still in flight won the race: read and try again
                    current = await self._call(
                        self._api.read_namespaced_lease, self._name, self._namespace
                    )
                except Exception as read_error:
                    log.warning(
                        "cannot release lease %s/%s: %s", self._namespace, self._name, read_error
                    )
                    return False
                self._observe(current, now)
                continue
            except Exception as error:
                log.warning("cannot release lease %s/%s: %s", self._namespace, self._name, error)
                return False
            self._observe(released, now)
            log.info("%s released lease %s/%s", self.identity, self._namespace, self._name)
            return True
        return False
