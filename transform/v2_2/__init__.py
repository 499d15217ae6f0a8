"""v2.2 image config transformations."""
