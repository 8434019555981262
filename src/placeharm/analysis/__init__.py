"""Statistical analysis on figures already read: pure functions, no store, no web (issue 16)."""
