"""Schemathesis hooks for tests/test_fuzz_api.py (loaded through ``SCHEMATHESIS_HOOKS``).

``POST /banks/<name>/import`` takes NDJSON, a media type schemathesis has no serializer for:
its generated body (a string, as the spec says) goes on the wire as text.
"""

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
