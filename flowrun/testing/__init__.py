"""Testing flowrun workflows, for us and for users: ``LoopbackServer``, an OpenAI-compatible
server on 127.0.0.1 with scripted replies (``loopback``, ``http_server``, and ``batches`` for
the Files and Batches APIs), every request checked against the official OpenAPI request
schemas (``openapi``), and the ``flowrun_server`` pytest fixture (``pytest_plugin``).

May import: ``errors``, ``provider`` (model names); nothing in flowrun imports ``testing``.
"""

from flowrun.testing.loopback import (
    LoopbackServer,
    OpenAPIValidator,
    RecordedRequest,
    Reply,
    ToolCall,
    embed_text,
    validate_every_server,
)

__all__ = [
    "LoopbackServer",
    "OpenAPIValidator",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "embed_text",
    "validate_every_server",
]
