"""Named servers at run time: settings for the provider, clients, and each server's prices.

The workflow's ``servers:`` (and the user config's, see ``flowrun.format.user_config``) are
resolved by the loader into ``LoadedWorkflow.servers``; this module turns them into what a
run uses: ``ServerSettings`` for the provider's clients (each server's prices are
``flowrun.format.server_prices``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowrun.format.server_prices import price_tables, server_price_table, step_prices
from flowrun.provider.server_clients import ServerClients
from flowrun.provider.servers import ServerSettings

if TYPE_CHECKING:
    from flowrun.format.spec import ServerSpec
    from flowrun.format.workflow import LoadedWorkflow

__all__ = [
    "prepare_default_client",
    "price_tables",
    "server_clients",
    "server_price_table",
    "server_settings",
    "step_prices",
]


def server_settings(name: str, spec: ServerSpec) -> ServerSettings:
    """What the provider needs of a server written in a file."""
    azure = spec.azure
    return ServerSettings(
        name=name,
        base_url=spec.base_url,
        api_key_env=spec.api_key_env,
        headers=dict(spec.headers),
        organization=spec.organization,
        project=spec.project,
        timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
        rpm=spec.rpm,
        tpm=spec.tpm,
        azure_endpoint=azure.endpoint if azure else None,
        azure_api_version=azure.api_version if azure else None,
        deployments=dict(azure.deployments) if azure else {},
        max_tokens_param=spec.max_tokens_param,
        tool_call_content=spec.tool_call_content,
    )


def server_clients(wf: LoadedWorkflow, make: Any = None) -> ServerClients | None:
    """A client per named server the workflow can use (None when it names none)."""
    if not wf.servers:
        return None
    settings = {name: server_settings(name, e.spec) for name, e in wf.servers.items()}
    return ServerClients(settings, make)


def prepare_default_client(wf: LoadedWorkflow) -> None:
    """Start making the SDK client from the environment in a background thread while the
    run is set up (``provider.prepared_sdk``), if a model step calls no named server."""
    from flowrun.format.server_checks import step_server

    if any(s.type != "tool" and step_server(wf, sid) is None for sid, s in wf.spec.steps.items()):
        from flowrun.provider import prepared_sdk
        from flowrun.provider.client import sdk_maker

        prepared_sdk.start(sdk_maker())
