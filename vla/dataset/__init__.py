"""Glue between our robots and LeRobot's own LeRobotDataset (v3.0)."""

from vla.dataset.writer import DatasetWriterError, EpisodeWriter, dataset_schema, open_for_recording

__all__ = ["DatasetWriterError", "EpisodeWriter", "dataset_schema", "open_for_recording"]
