"""The build-system integration files, installed with stamp: stamp.mk and stamp.cmake.

This directory is the top-level `hooks/` of stamp's source tree, installed as the package
`stamp.hooks` (pyproject.toml, as templates/ is `stamp.templates`), so `stamp hooks path`
finds the same files in a source checkout, an editable install and a wheel.
"""
