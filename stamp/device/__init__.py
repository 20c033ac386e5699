"""Step 3, after the flash: --device targets, transports, the report, the verdict, flashing."""
