"""OTLP receivers: gRPC and HTTP front ends over one `Ingest`."""
