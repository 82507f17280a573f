"""sla-stream: event-driven SLA breach detection on Kafka."""

__version__ = "0.1.0"
