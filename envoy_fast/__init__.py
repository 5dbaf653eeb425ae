"""envoy_fast: Envoy's architecture rebuilt in Python with a Cython data plane."""

__version__ = "0.1.0"
