"""Peak-EWMA latency estimate of one endpoint (Finagle ``PeakEwma``, tower ``peak_ewma.rs``).

The estimate jumps to any RTT above it (so a slowing endpoint is avoided at once) and otherwise
decays toward the observed RTTs with ``w = exp(-Δt/τ)``, where Δt is the time since the last
update (samples arrive unevenly). Reading it first decays it by observing an RTT of 0, so an
endpoint nobody uses drifts back toward zero and gets tried again. A fresh endpoint starts at a
default RTT (Linkerd: 30 ms). An endpoint with requests pending and no RTT seen yet costs a
penalty (Finagle, Envoy's peak-EWMA): it is probably failing, and piling on would hurt.

Times are in seconds; the clock is the caller's (``now`` arguments), never read here.
"""

from __future__ import annotations

import math

DECAY_SECONDS = 10.0  # Finagle p2cPeakEwma, linkerd2-proxy EWMA_DECAY, Envoy decay_time
DEFAULT_RTT_SECONDS = 0.030  # linkerd2-proxy EWMA_DEFAULT_RTT
# Finagle's Penalty is Long.MaxValue >> 16 nanoseconds (~140 737 s); any value far above a
# real RTT times any real pending count works. Envoy's penalty_value is 1e6 (ms).
PENALTY_SECONDS = 1.0e6


class PeakEwma:
    """Mutable per-endpoint estimate; ``cost`` is what power-of-two-choices compares."""

    __slots__ = ("_decay_seconds", "_estimate", "_has_rtt", "_updated_at")

    def __init__(
        self,
        now: float,
        *,
        default_rtt_seconds: float = DEFAULT_RTT_SECONDS,
        decay_seconds: float = DECAY_SECONDS,
    ) -> None:
        if decay_seconds <= 0 or default_rtt_seconds < 0:
            raise ValueError("decay must be positive and the default RTT not negative")
        self._decay_seconds = decay_seconds
        self._estimate = default_rtt_seconds
        self._updated_at = now
        self._has_rtt = False

    @property
    def has_rtt(self) -> bool:
        """Whether a response has been timed yet (the default RTT is only a guess)."""
        return self._has_rtt

    def observe(self, rtt_seconds: float, now: float) -> float:
        """Fold one measured RTT in; returns the new estimate."""
        self._has_rtt = True
        return self._update(max(0.0, rtt_seconds), now)

    def estimate(self, now: float) -> float:
        """The estimate decayed to ``now`` (tower: an update with a zero RTT)."""
        return self._update(0.0, now)

    def cost(self, now: float, pending: int) -> float:
        """``estimate * (pending + 1)``, or the penalty while requests wait on an endpoint
        that has never answered."""
        estimate = self._update(0.0, now)
        if pending > 0 and not self._has_rtt:
            return PENALTY_SECONDS + pending
        return estimate * (pending + 1)

    def _update(self, rtt: float, now: float) -> float:
        if rtt > self._estimate:
            self._estimate = rtt  # peak: the worst recent RTT wins at once
        else:
            elapsed = max(0.0, now - self._updated_at)
            decay = math.exp(-elapsed / self._decay_seconds)
            self._estimate = self._estimate * decay + rtt * (1.0 - decay)
        if now > self._updated_at:
            self._updated_at = now
        return self._estimate
