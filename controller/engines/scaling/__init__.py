"""The ScalabilityEngine: HPA-exact horizontal scaling, predictive scaling, vertical scaling.

Pure decisions live here (replica calculation, normalisation, forecasting, VPA-style
recommendations); the engine step that reads metrics and acts sits at the edge.
"""
