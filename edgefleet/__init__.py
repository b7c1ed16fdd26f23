"""EdgeFleet: the core shared by every package (CLI, config, the recommendation task)."""

__version__ = "0.1.0"
