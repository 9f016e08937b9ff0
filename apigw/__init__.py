"""Internals of the API gateway and of its two demo services.

- the gateway core, flat here: proxy, routing, keys, request gate, upstreams, health, lifecycle;
  with its parts `ratelimit/`, `observability/` and `streaming/` (WebSockets and streams);
- `services/`: the demo users and orders services (the gateway never imports them);
- `openapi/`: Swagger UI, and the gateway's merged page of its backends' documents;
- `config/` and `shared/`: what both products use (tests/test_layering.py keeps it that way).
"""

__version__ = "0.1.0"
