"""placeharm.ingest."""
