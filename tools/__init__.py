"""Command-line tools built as .par files."""
