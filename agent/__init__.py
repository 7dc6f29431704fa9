"""Linescale node agent: observes the node, serves and applies what the controller pushes."""
