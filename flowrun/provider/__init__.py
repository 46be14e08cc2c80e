"""Models and the servers that answer them: the model client (``client``, the only module that
imports openai), the rate-limited wrapper (``ratelimit``), the in-process ``--mock`` model
(``mock``); the model catalog and prices (``catalog``, ``pricing``, ``data/``), token counts
(``tokens``), image sizes (``images``) and OpenAI's strict structured-output subset
(``strict_schema``).

May import: ``errors``, ``results``, ``redaction``, ``format.validation``, ``testing.loopback``
(the ``--mock`` server, until the mock runs in-process); never ``engine``, ``store``, ``batch`` or
``cli``.
"""
