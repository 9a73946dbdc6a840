"""Runs inside the user's app: provider patches, config context, router. Imports semconv only."""
