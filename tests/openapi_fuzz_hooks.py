"""Schemathesis hooks for the OpenAPI fuzz run: how to put a bulk-import body on the wire."""

import schemathesis

# The import's NDJSON body is text like CSV; Schemathesis knows only text/* as text.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
