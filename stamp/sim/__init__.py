"""Simulated devices: a serial board on a pseudo-terminal and a Particle Cloud on loopback."""
