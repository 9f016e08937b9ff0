"""What the gateway shows of its work: the per-request record (`exchange`), W3C trace context,
per-worker metrics merged across workers (`metrics`, `metrics_share`), the JSON access log,
optional OTLP export (`otel`) and the admin surface (`admin`: /metrics, /status)."""
