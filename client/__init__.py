"""Image names, credentials and registry clients."""
