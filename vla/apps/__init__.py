"""Hydra apps behind the console scripts (vla-record, ...)."""
