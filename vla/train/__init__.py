"""Training the VLA on LeRobot datasets: data, augmentation, the loop, checkpoints, distribution."""
