"""The five engines (Scalability, Performance, LoadBalancing, Resource, Caching): pure decisions.

Filled in by later work; each is a function of observed state, metrics, policy and time.
"""
