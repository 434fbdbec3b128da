"""Many suspects against many owners: discovery, workers, the cache, the engines (local processes or Ray),
results with their gate, the JSON schema, the HTML report and ``verifier.toml``."""
