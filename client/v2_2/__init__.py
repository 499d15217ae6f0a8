"""Docker registry v2 protocol with schema 2, manifest lists and OCI."""
