"""The Flower ServerApp that coordinates federated rounds (never imports client/)."""
