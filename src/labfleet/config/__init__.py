"""Typed configuration: model, loading, error formatting, schema export."""
