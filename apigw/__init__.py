"""Internals of the API gateway: config, routing, proxying, auth, errors and docs."""
