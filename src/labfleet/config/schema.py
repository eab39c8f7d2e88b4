"""JSON Schema of ``labfleet.yaml`` for editor completion (yaml-language-server)."""

from __future__ import annotations

from typing import Any

from labfleet.config.model import FleetConfig


def json_schema() -> dict[str, Any]:
    schema = FleetConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "labfleet.yaml"
    return schema
