"""Envoy's admin endpoint, served by the main process."""
