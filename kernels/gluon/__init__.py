"""Hopper attention kernels written in Gluon (the ping-pong kernel and the wgmma experiments)."""
