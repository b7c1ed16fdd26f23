"""From the MiniLM teacher to an ultra-compact on-device model (no flwr, no ray in this package)."""
