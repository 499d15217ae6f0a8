"""HTTP transports: streaming, retries, pooling."""
