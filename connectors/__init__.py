"""Sources and sinks for streamcore: memory, files, Kafka, Redis."""
