"""Hydra configs, shipped as package data so the console scripts find them when installed."""
