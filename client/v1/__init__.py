"""Docker registry v1 protocol and image format."""
