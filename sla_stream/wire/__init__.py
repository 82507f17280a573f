"""Wire records: input events, alerts, dead-letter records and statements as JSON."""
