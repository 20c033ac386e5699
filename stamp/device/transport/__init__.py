"""How stamp hears a device: serial ports and the Particle Cloud behind one interface."""
