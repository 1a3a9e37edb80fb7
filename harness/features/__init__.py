"""Feature extraction: extractors (registered by name), the sharded feature store and the Ray Data runner."""
