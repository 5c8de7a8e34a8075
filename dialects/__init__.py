"""irnet's IR dialects (installed as `irnet.dialects`)."""
