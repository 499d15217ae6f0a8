"""Docker registry v2 protocol with schema 1 manifests."""
