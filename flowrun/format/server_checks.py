"""Checks of named servers: every ``server:`` names one, settings are sound, keys are set.

A step's ``server:`` (or ``defaults.server``) names a server under the workflow's ``servers:``
or, failing that, in the user configuration file (``flowrun.format.user_config``). Problems
of a server written in the config file are reported at their place in that file.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flowrun.errors import Problem, did_you_mean
from flowrun.format.server_data import NO_KEYS, ServerEntry

if TYPE_CHECKING:
    from flowrun.format.workflow import LoadedWorkflow

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})


def server_uses(wf: LoadedWorkflow) -> list[tuple[tuple[Any, ...], str, list[str]]]:
    """Each place a server is named: (path in the file, server name, model steps using it)."""
    spec = wf.spec
    uses: list[tuple[tuple[Any, ...], str, list[str]]] = []
    default_users = []
    for sid, step in spec.steps.items():
        if step.type == "tool":
            continue
        if getattr(step, "server", None):
            uses.append((("steps", sid, "server"), step.server, [sid]))
        else:
            default_users.append(sid)
    if spec.defaults.server:
        uses.insert(0, (("defaults", "server"), spec.defaults.server, default_users))
    return uses


def step_server(wf: LoadedWorkflow, sid: str) -> str | None:
    """The name of the server a model step calls (None: the SDK's environment variables)."""
    step = wf.spec.steps[sid]
    return getattr(step, "server", None) or wf.spec.defaults.server


def check_servers(
    wf: LoadedWorkflow,
    *,
    check_env: bool = False,
    unchecked: set[str] | frozenset[str] = frozenset(),
) -> list[Problem]:
    """Problems of the workflow's servers; fills in ``wf.servers`` with those it can use.

    ``check_env`` (``validate`` and ``run``): the key variable of every server a step uses
    must be set. ``unchecked``: servers left out as invalid (reported already).
    """
    entries = {name: ServerEntry(name, spec, wf.source) for name, spec in wf.spec.servers.items()}
    problems: list[Problem] = []
    uses = server_uses(wf)
    uses = [use for use in uses if use[1] not in unchecked]
    missing = {name for _, name, _ in uses if name not in entries}
    config = None
    if missing:
        from flowrun.format.user_config import load_user_config

        config = load_user_config()
        problems += config.problems
        for name in missing:
            if name in config.servers and config.source is not None:
                entries[name] = ServerEntry(name, config.servers[name], config.source, True)
    for entry in entries.values():
        if not entry.in_config or entry.name in missing:
            problems += settings_problems(entry)
    for path, name, steps in uses:
        if name not in entries:
            line, col = wf.source.locate(path)
            problems.append(Problem(wf.file, line, col, _unknown(name, entries, config, steps)))
        elif check_env and steps:
            problems += key_problems(entries[name])
    wf.servers = entries
    return problems


def _unknown(name: str, entries: dict[str, ServerEntry], config: Any, steps: list[str]) -> str:
    users = ", ".join(f"'{s}'" for s in steps)
    known = sorted(entries)
    where = f"servers: in the workflow or in {config.path}" if config else "servers:"
    hint = did_you_mean(name, known) or (f" (servers: {', '.join(known)})" if known else "")
    used = f" (used by step{'s' if len(steps) != 1 else ''} {users})" if steps else ""
    return f"unknown server '{name}'{used}{hint}; define it under {where}"


def settings_problems(entry: ServerEntry) -> list[Problem]:
    """A malformed URL, a key in a header, a key where its variable's name belongs."""
    spec, problems = entry.spec, []
    if spec.base_url is not None:
        why = _url_problem(spec.base_url)
        if why:
            problems.append(entry.problem(("base_url",), f"base_url {why}"))
    if spec.azure is not None:
        why = _url_problem(spec.azure.endpoint)
        if why:
            problems.append(entry.problem(("azure", "endpoint"), f"azure.endpoint {why}"))
        if spec.base_url is not None:
            problems.append(
                entry.problem(
                    ("base_url",),
                    "give base_url or azure, not both (an Azure server's URL is azure.endpoint)",
                    key=True,
                )
            )
    for header in spec.headers:
        if header.lower() in _KEY_HEADERS:
            problems.append(
                entry.problem(("headers", header), f"header {header}: {NO_KEYS}", key=True)
            )
    if spec.api_key_env is not None and not _ENV_NAME.match(spec.api_key_env):
        problems.append(
            entry.problem(
                ("api_key_env",),
                "api_key_env is the NAME of the environment variable holding the key "
                "(letters, digits and _), never the key itself",
            )
        )
    return problems


def key_problems(entry: ServerEntry) -> list[Problem]:
    """The server's key variable, when it names one, must be set."""
    env = entry.spec.api_key_env
    if env is None or not _ENV_NAME.match(env) or os.environ.get(env):
        return []
    return [
        entry.problem(
            ("api_key_env",),
            f"the environment variable {env} (its api_key_env) is not set; export it",
        )
    ]


def _url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable server URL (None if it is)."""
    example = "e.g. http://localhost:8000/v1"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"'{url}' is not a valid URL ({example})"
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return f"'{url}' is not an http:// or https:// URL with a host ({example})"
    if parts.username or parts.password:
        return f"holds a user or password: {NO_KEYS}"
    return None
