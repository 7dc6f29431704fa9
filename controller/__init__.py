"""Linescale controller: one per cluster; gathers agent reports, decides, and pushes."""
