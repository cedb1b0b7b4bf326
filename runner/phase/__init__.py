"""The phase file: its model (pydantic, extra="forbid"), safe YAML, path globs, ids, image
references, overrides, the JSON schema, devcontainer.json."""
