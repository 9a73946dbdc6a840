"""Metric instruments of the OTel GenAI conventions that llmloop records, with the spec's bucket advice."""

from __future__ import annotations

from typing import Final

CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
"""Histogram, seconds: duration of a client GenAI operation (for streams, until the stream ends)."""

CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
"""Histogram, `{token}`: tokens per operation, one record per `gen_ai.token.type` (`input`, `output`)."""

CLIENT_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
"""Histogram, seconds: streams only, time from the request to the first chunk carrying output content."""

DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""Explicit bucket advice of the conventions for duration histograms (seconds, powers of two)."""

TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
"""Explicit bucket advice of the conventions for `gen_ai.client.token.usage` (powers of four)."""

TIME_TO_FIRST_CHUNK_BUCKETS: Final = DURATION_BUCKETS
"""The conventions give time-to-first-chunk the same advice as the operation duration."""
