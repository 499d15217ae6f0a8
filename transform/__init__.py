"""Image metadata transformations."""
