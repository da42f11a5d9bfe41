"""Serial arms, servo protocols, calibration and the emulated servo bus (later issues)."""
