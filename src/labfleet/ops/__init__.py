"""Day-two operations: backup and restore, schema upgrades, secret rotation, service units.

Everything here acts on one platform's data directory (or its PostgreSQL database) and is
driven by ``labfleet backup|restore|db|rotate|service``; the supervisor only calls
:func:`labfleet.ops.migrate.prepare_hub_start` before it starts the hub.
"""
