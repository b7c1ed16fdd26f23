"""Launching Flower simulations on the Ray backend over an emulated device fleet."""
