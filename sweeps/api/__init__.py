"""Training Monitor REST API, compatible with the SigOpt Python client."""
