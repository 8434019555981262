"""placeharm.services."""
