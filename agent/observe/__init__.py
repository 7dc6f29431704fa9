"""The agent's observation side: samples of the node, its processes and cgroups, and the
bottlenecks they show (USE method, with PSI and cgroup throttling as saturation signals)."""
