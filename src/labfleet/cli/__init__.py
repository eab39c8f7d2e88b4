"""The ``labfleet`` command: one module per command group, each thin."""
