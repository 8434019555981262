"""placeharm.cli."""
