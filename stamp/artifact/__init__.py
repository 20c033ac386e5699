"""Reading what was really built: ELF files and Particle module binaries."""
