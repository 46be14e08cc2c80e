"""Models and the servers that answer them: the model client (``client``, the only module that
imports openai), the rate-limited wrapper (``ratelimit``), the in-process ``--mock`` model
(``mock``, its schema instances in ``schema_examples``), all behind the ``ModelClient`` Protocol
(``interface``); the model catalog and prices (``catalog``, ``pricing``, ``data/``), token counts
(``tokens``), image sizes (``images``) and OpenAI's strict structured-output subset
(``strict_schema``).

May import: ``errors``, ``results``, ``redaction``, ``format.validation``, ``format.textfile``,
``format.promptflow_common`` and ``format.promptflow_connections`` (promptflow-tools' prompt
helpers and the connections' variable names, for ``promptflow_tools``);
never ``engine``, ``store``, ``batch``, ``cli`` or ``testing``.
"""
