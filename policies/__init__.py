"""Policy implementations: scripted experts, the VLA policy, replay."""
