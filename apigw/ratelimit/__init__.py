"""Per-consumer traffic policy: plans and route rates compiled per (plan, route) (`policies`),
the limiter with its store choice and circuit breaker (`limiter`), exact in-process counting
(`local`) and counting shared through Redis with one Lua script (`redis_store`, `script.lua`)."""
