"""The Flower ClientApp: an emulated memory-capped phone running on-device recommendation (never imports server/)."""
