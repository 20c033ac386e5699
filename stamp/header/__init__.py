"""Step 1, before the compiler: git state, the edit counter, rendering, the git hook."""
