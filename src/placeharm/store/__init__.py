"""placeharm.store."""
