"""Experiments, trials, history ingestion, sweeps, live events and the REST API."""
