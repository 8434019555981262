"""Statistical analysis on placeharm's counts: pure functions, no I/O (issue 16)."""
