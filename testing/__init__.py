"""Test fixtures and tests; not part of the shipped library."""
