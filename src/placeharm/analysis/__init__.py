"""Statistical analysis on placeharm's counts: pure functions on numbers and arrays, no store, no web (issue 16)."""
