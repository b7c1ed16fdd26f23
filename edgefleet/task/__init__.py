"""The on-device recommendation task on MovieLens-100K: data, split and ownership, metrics, protocol, baselines."""
