"""v1 image metadata transformations."""
