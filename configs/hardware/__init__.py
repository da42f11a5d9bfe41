"""Configs of the hardware apps (vla-emulate, vla-calibrate): apart from configs/, whose `robot/` group
would otherwise claim their plain `robot=` field."""
