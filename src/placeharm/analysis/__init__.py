"""Statistical analysis: pure functions on arrays and frames (no store, no web)."""
