"""The pure SLA engine: standard library and calendar data only, no Kafka, Faust or Prometheus."""
