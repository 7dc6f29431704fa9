"""Metric names, one place: ``linescale_<subsystem>_<name>_<unit>``, counters end in ``_total``.

prometheus-client appends ``_total`` to Counter names itself, so counter constants here omit it;
the exposed name is the constant plus ``_total``.
"""

BUILD_INFO = "linescale_build"  # exposed as linescale_build_info{version, component}

# agent
AGENT_PUSHES = "linescale_agent_pushes"  # {kind, outcome}
AGENT_ROUTING_VERSION = "linescale_agent_routing_version"
AGENT_TUNING_VERSION = "linescale_agent_tuning_version"
AGENT_REPORTS = "linescale_agent_reports"  # {outcome}
AGENT_REPORT_DURATION = "linescale_agent_report_duration_seconds"
AGENT_LAST_REPORT_SUCCESS = "linescale_agent_last_report_success_timestamp_seconds"
AGENT_POD_LIST_FAILURES = "linescale_agent_pod_list_failures"  # counter

# controller
CONTROLLER_REPORTS = "linescale_controller_reports"  # {outcome}
CONTROLLER_AGENTS = "linescale_controller_agents"  # {state}
CONTROLLER_PUSHES = "linescale_controller_pushes"  # {kind, outcome}
CONTROLLER_SOURCE_HEALTHY = "linescale_controller_source_healthy"  # gauge {source}
CONTROLLER_LEADER = "linescale_controller_leader"  # gauge: 1 on the replica that may act

# HTTP, both components
HTTP_REJECTED = "linescale_http_rejected_requests"  # {reason}

# agent: collection and bottleneck detection
COLLECTOR_SAMPLES = "linescale_collector_samples"  # counter
COLLECTOR_ERRORS = "linescale_collector_errors"  # counter {source}
COLLECTOR_DURATION = "linescale_collector_sample_duration_seconds"
COLLECTOR_LAST_SAMPLE = "linescale_collector_last_sample_timestamp_seconds"
BOTTLENECK_ACTIVE = "linescale_bottleneck_active"  # {resource, kind, severity}

# agent: cache
CACHE_REQUESTS = "linescale_cache_requests"  # counter {level, namespace, result}
CACHE_BYTES = "linescale_cache_bytes"  # gauge {level, namespace}
CACHE_ENTRIES = "linescale_cache_entries"  # gauge {level, namespace}
CACHE_EVICTIONS = "linescale_cache_evictions"  # counter {level, namespace}
CACHE_INVALIDATIONS = "linescale_cache_invalidations"  # counter {source, kind}
CACHE_L2_ERRORS = "linescale_cache_l2_errors"  # counter
CACHE_L2_AVAILABLE = "linescale_cache_l2_available"  # gauge
CACHE_LOOKUP_DURATION = "linescale_cache_lookup_duration_seconds"  # histogram {level}

# controller: reconcile framework (per engine)
RECONCILE = "linescale_reconcile"  # counter {engine, result}
RECONCILE_DURATION = "linescale_reconcile_duration_seconds"  # histogram {engine}
DECISIONS = "linescale_decisions"  # counter {engine, reason}
LAST_SUCCESS = "linescale_last_success_timestamp_seconds"  # gauge {engine}

# agent: embedded dataplane (per upstream endpoint)
DATAPLANE_REQUESTS = "linescale_dataplane_requests"  # counter {service, endpoint, code_class}
DATAPLANE_REQUEST_DURATION = "linescale_dataplane_request_duration_seconds"  # {service, endpoint}
DATAPLANE_IN_FLIGHT = "linescale_dataplane_in_flight"  # gauge {service, endpoint}
DATAPLANE_EWMA = "linescale_dataplane_ewma_seconds"  # gauge {service, endpoint}
DATAPLANE_RETRIES = "linescale_dataplane_retries"  # counter {service, outcome}
DATAPLANE_EJECTIONS = "linescale_dataplane_ejections"  # counter {service}
DATAPLANE_HAPROXY_FAILURES = "linescale_dataplane_haproxy_failures"  # {operation}
DATAPLANE_REJECTED = "linescale_dataplane_rejected"  # counter {service, reason}
RESOURCE_EFFICIENCY = "linescale_resource_efficiency_ratio"  # gauge {pool, resource}
RESOURCE_WASTE = "linescale_resource_waste"  # gauge {pool, unit}

# controller: the ScalabilityEngine's view of each managed workload
WORKLOAD_REPLICAS = "linescale_workload_replicas"  # gauge {namespace, workload, kind}
WORKLOAD_MAX_REPLICAS = "linescale_workload_max_replicas"  # gauge {namespace, workload, kind}
FORECAST_ERROR = "linescale_forecast_error_percent"  # gauge {namespace, workload, kind}
FORECAST_ERROR_GATE = "linescale_forecast_error_gate_percent"  # gauge {namespace, workload, kind}
ROUTING_ZONE_SHARE = "linescale_routing_zone_share"  # gauge {service, caller_zone, upstream_zone}
ROUTING_ENDPOINTS = "linescale_routing_endpoints"  # gauge {service, state}
