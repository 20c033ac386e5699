"""stamp: stamp every firmware build, extract what was really built, prove the device runs it."""

__version__ = "0.1.0"
