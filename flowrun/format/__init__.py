"""The workflow file: YAML with positions (``yaml_source``), the file's pydantic models
(``spec``) and their errors as problems (``spec_problems``), the loader, the checks
(``checks``, ``model_checks``, ``tool_checks``), sandboxed templating, the step graph,
``module:callable`` imports, JSON-schema validation and run inputs.

Pure: no I/O but reading files.

May import: ``errors``, ``results``, ``metrics``, ``provider.catalog``, ``provider.pricing`` (the model
tables: data, no client), ``provider.images`` (image types by their bytes) and
``provider.promptflow_tools`` (the stand-in promptflow-tools calls that ``promptflow_stub``
installs for flows' own Python); never ``engine``, ``store``, ``batch``, ``cli``.
"""
