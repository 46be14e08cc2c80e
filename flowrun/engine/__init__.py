"""Running a loaded workflow: the executor (a step starts when its dependencies are done),
one module per step type (``steps/``), the services a run shares (``services``: the model
client, budget gate, cache, tools), the budget, Python tools at run time, conversation
threads, ``estimate`` (worst case, no call) and ``resume`` (which stored steps a resume keeps).

May import: ``format``, ``provider``, ``store``, ``errors``, ``results``, ``metrics``,
``redaction``; never ``api``, ``batch`` or ``cli``.
"""
