"""The embedded platform on one machine: data directory, supervisor, resume."""
