"""Particle module binaries (SPEC section 7): the format, locating the prefix, the suffix's
extensions, parsing a module, and building one (for the demo and the tests)."""
