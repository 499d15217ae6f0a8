"""Python libraries and tools for Docker / OCI container registries."""
