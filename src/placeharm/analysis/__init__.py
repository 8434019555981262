"""Statistical analysis on placeharm's counts: pure functions, no store, no web (issue 16)."""
