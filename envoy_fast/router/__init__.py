"""Routing: route configuration messages, checks and the route table plan."""
