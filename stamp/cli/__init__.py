"""The face: click commands, words, colours, progress, --json and exit codes.

The only package that speaks to a person. `entry` is the console script (with the
click-free `stamp header` fast path), `app` the click group and the one place exit codes
are decided, one module per command beside them.
"""
