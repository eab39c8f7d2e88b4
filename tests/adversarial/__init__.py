"""The hostile member against a running platform (issue 10)."""
