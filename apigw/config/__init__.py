"""The gateway's and the services' configuration: typed, frozen, parsed once at start-up.

`settings` holds the top-level settings and the load/parse entry points; `fields` the shared
checks, `routes` the per-route settings, `process` the limits, pool and shutdown settings and
`consumers` the client consumers. Callers import the names they need from here.
"""

from apigw.config.fields import ConfigError
from apigw.config.process import PoolSettings, ServerLimits, Shutdown
from apigw.config.routes import Health, Route, Timeouts
from apigw.config.settings import (
    DEMO_GATEWAY_SECRET,
    GatewaySettings,
    ServiceSettings,
    load_gateway_settings,
    load_service_settings,
    parse_gateway_settings,
)

__all__ = [
    "DEMO_GATEWAY_SECRET",
    "ConfigError",
    "GatewaySettings",
    "Health",
    "PoolSettings",
    "Route",
    "ServerLimits",
    "ServiceSettings",
    "Shutdown",
    "Timeouts",
    "load_gateway_settings",
    "load_service_settings",
    "parse_gateway_settings",
]
