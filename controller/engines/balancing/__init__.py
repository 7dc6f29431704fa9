"""The LoadBalancingEngine: Envoy-exact routing decisions computed centrally.

Envoy makes these choices per request inside every proxy; Linescale's controller makes them
once per membership change and hands agents the result (zone shares, priority load, endpoint
weights). Each module ports one piece of Envoy's integer math so the two cannot disagree:
``zone_aware`` (zone-aware routing), ``priority`` (priority load, panic, locality weights),
``slow_start`` (warm-up weights), ``outlier`` (outlier ejection) and ``routing`` (the decision
for one service and its ``decide`` JSON face).
"""
