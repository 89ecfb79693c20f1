"""Training configurations: one `get_config()` per file (ml_collections)."""
