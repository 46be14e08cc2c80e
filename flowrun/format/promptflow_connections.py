"""promptflow's connection classes for the stand-in ``promptflow.connections``, filled from the
environment, so a converted python node that takes a connection runs without promptflow.

A promptflow flow names a connection (``connection: open_ai_connection``) and promptflow passes
the stored connection object. In the converted workflow the tool step passes the same name;
the parameter's annotation (``conn: OpenAIConnection``) turns it into one of these objects when
flowrun checks the arguments. Each field is read from ``<NAME>_<FIELD>`` (the connection's name
upper-cased, other characters as ``_``: ``OPEN_AI_CONNECTION_API_KEY``), falling back to the
variables the OpenAI SDK reads:

======================  =========================  ==========================================
class                   field                      fallback
======================  =========================  ==========================================
OpenAIConnection        api_key, base_url,         OPENAI_API_KEY, OPENAI_BASE_URL,
                        organization               OPENAI_ORG_ID
AzureOpenAIConnection   api_key, api_base,         AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT,
                        api_version, api_type      OPENAI_API_VERSION, "azure"
CustomConnection        any key (``conn.x``,       none: ``<NAME>_X`` must be set
                        ``conn["x"]``)
======================  =========================  ==========================================
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["AzureOpenAIConnection", "CustomConnection", "OpenAIConnection", "env_name"]


def env_name(connection: str, field: str) -> str:
    """The environment variable that holds ``field`` of the connection named ``connection``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{connection}_{field}").strip("_").upper()


class _Connection:
    _fields: dict[str, str | None] = {}  #: field -> fallback variable
    _constants: dict[str, str] = {}

    def __init__(self, name: str | None = None, **values: Any) -> None:
        self.name = name
        for field, fallback in self._fields.items():
            value = values.get(field)
            if value is None and name:
                value = os.environ.get(env_name(name, field))
            if value is None and fallback:
                value = os.environ.get(fallback)
            setattr(self, field, value)
        for field, value in self._constants.items():
            setattr(self, field, values.get(field, value))

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(name={self.name!r})"

    def keys(self) -> list[str]:
        """What ``dict(connection)`` holds (promptflow's connections convert the same way)."""
        return [k for k in [*self._fields, *self._constants] if getattr(self, k) is not None]

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError as exc:
            raise KeyError(str(exc)) from None

    def __iter__(self) -> Any:
        return iter(self.keys())

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def build(value: Any) -> Any:
            if isinstance(value, cls):
                return value
            if isinstance(value, str):
                return cls(value)
            if isinstance(value, dict):
                return cls(**value)
            raise ValueError(f"expected the name of a connection, got {type(value).__name__}")

        return core_schema.no_info_plain_validator_function(build)


class OpenAIConnection(_Connection):
    _fields = {"api_key": "OPENAI_API_KEY", "base_url": "OPENAI_BASE_URL", "organization": "OPENAI_ORG_ID"}  # fmt: skip

    def __init__(self, name: str | None = None, **values: Any) -> None:
        if name and os.environ.get(env_name(name, "api_base")) and not values:
            # <NAME>_API_BASE makes the name an Azure connection (Union[OpenAI..., Azure...])
            raise ValueError(f"connection '{name}' is an Azure OpenAI connection")
        super().__init__(name, **values)


class AzureOpenAIConnection(_Connection):
    """An Azure connection needs an endpoint: ``<NAME>_API_BASE`` or ``AZURE_OPENAI_ENDPOINT``
    (without one, a name given for ``Union[AzureOpenAIConnection, OpenAIConnection]`` is an
    OpenAI connection)."""

    _fields = {"api_key": "AZURE_OPENAI_API_KEY", "api_base": "AZURE_OPENAI_ENDPOINT", "api_version": "OPENAI_API_VERSION"}  # fmt: skip
    _constants = {"api_type": "azure"}

    def __init__(self, name: str | None = None, **values: Any) -> None:
        super().__init__(name, **values)
        if not self.api_base:
            where = env_name(name or "connection", "api_base")
            raise ValueError(
                f"connection '{name}' has no Azure endpoint: set {where} or AZURE_OPENAI_ENDPOINT"
            )


class CustomConnection(_Connection):
    """Keys are read when used: ``conn.endpoint`` is ``<NAME>_ENDPOINT``."""

    def __init__(
        self,
        name: str | None = None,
        secrets: dict[str, Any] | None = None,
        configs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        self.name = name
        self.secrets = dict(secrets or {})
        self.configs = dict(configs or {})

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        for values in (self.__dict__.get("secrets", {}), self.__dict__.get("configs", {})):
            if key in values:
                return values[key]
        name = self.__dict__.get("name")
        value = os.environ.get(env_name(name, key)) if name else None
        if value is None:
            raise AttributeError(
                f"connection '{name}' has no '{key}': set {env_name(name or 'connection', key)}"
            )
        return value

    def keys(self) -> list[str]:
        prefix = env_name(self.name, "") + "_" if self.name else None
        from_env = [k[len(prefix) :].lower() for k in os.environ if prefix and k.startswith(prefix)]
        return list(dict.fromkeys([*self.secrets, *self.configs, *from_env]))
