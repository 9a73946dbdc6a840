"""Runs beside ClickHouse: OTLP receivers, the batch writer and the query endpoint."""
