"""irnet's passes and emitters (installed as `irnet.lowering`)."""
