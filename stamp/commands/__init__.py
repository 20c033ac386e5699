"""One module per subcommand; `stamp.cli` loads them lazily."""
