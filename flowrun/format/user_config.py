"""The user's configuration file: the servers a person uses in every workflow.

It lives in the platform's config directory (``platformdirs.user_config_dir("flowrun")``,
e.g. ``~/.config/flowrun/config.yaml``); ``FLOWRUN_CONFIG`` points elsewhere. Its one section
today is ``servers:``, with the same settings as a workflow's ``servers:``; a workflow's own
server of the same name wins. Like the workflow file, it never holds a key: ``api_key_env``
names the environment variable that does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowrun.errors import Problem
from flowrun.format.spec import ServerSpec
from flowrun.format.yaml_source import SourceMap, YamlTooLarge, describe_yaml_error, parse_yaml

CONFIG_ENV = "FLOWRUN_CONFIG"


class UserConfigSpec(BaseModel):
    """The user configuration file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    servers: dict[str, ServerSpec] = Field(default_factory=dict)


@dataclass
class UserConfig:
    """The servers of the user configuration file, where they are written, and its problems."""

    path: Path
    servers: dict[str, ServerSpec] = field(default_factory=dict)
    source: SourceMap | None = None
    problems: list[Problem] = field(default_factory=list)


def config_path() -> Path:
    """``$FLOWRUN_CONFIG``, else ``config.yaml`` in the platform's config directory."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("flowrun")) / "config.yaml"


def load_user_config(path: Path | None = None) -> UserConfig:
    """The user configuration (empty when the file does not exist; ``FLOWRUN_CONFIG`` naming a
    missing file is a problem). Problems carry the config file's FILE:LINE:COL."""
    from flowrun.format.server_data import keys_in_file
    from flowrun.format.spec_problems import pydantic_problems

    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    path = path or config_path()
    config = UserConfig(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            config.problems.append(
                Problem(file, 1, 1, f"no such file (named by {CONFIG_ENV}); create it or unset it")
            )
        return config
    except (OSError, UnicodeDecodeError) as exc:
        config.problems.append(Problem(file, 1, 1, f"cannot read the config file: {exc}"))
        return config
    try:
        data, smap, duplicates = parse_yaml(text, file)
    except yaml.YAMLError as exc:
        line, col, message = describe_yaml_error(exc, text)
        config.problems.append(Problem(file, line, col, message))
        return config
    except YamlTooLarge as exc:
        config.problems.append(Problem(file, exc.line, exc.col, exc.message))
        return config
    config.source = smap
    config.problems += [
        Problem(file, d.line, d.col, f"duplicate key '{d.key}' (first on line {d.first_line})")
        for d in duplicates
    ]
    if data is None:
        return config
    if not isinstance(data, dict):
        config.problems.append(Problem(file, 1, 1, "the config file must be a YAML mapping"))
        return config
    config.problems += keys_in_file(data, smap)
    try:
        spec = UserConfigSpec.model_validate(data)
    except ValidationError as exc:
        config.problems += pydantic_problems(exc, data, smap)
        config.servers = _valid_servers(data)
        return config
    config.servers = spec.servers
    return config


def _valid_servers(data: dict[str, Any]) -> dict[str, ServerSpec]:
    """The servers of a config file that has problems elsewhere, each one that is valid."""
    servers: dict[str, ServerSpec] = {}
    for name, entry in (data.get("servers") or {}).items():
        try:
            servers[name] = ServerSpec.model_validate(entry)
        except ValidationError:
            continue
    return servers
