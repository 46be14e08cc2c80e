"""Pydantic models of the workflow file; ``schemas/workflow.schema.json`` is generated from them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError


def _new_dict() -> dict[str, Any]:
    """A new empty mapping: a field's default. (A Python function, not ``dict``: pydantic reads
    each factory's signature, a builtin's through its text, which first compiles tokenize's
    patterns: ~3 ms of every start-up.)"""
    return {}


def _new_list() -> list[Any]:
    """A new empty list: a field's default (see ``_new_dict``)."""
    return []


InputType = Literal["string", "integer", "number", "boolean", "array", "object"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


class _Strict(BaseModel):
    """No unknown keys, and no conversions: ``"0.5"`` is not a number, ``"yes"`` not true
    (an integer is still a number)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class InputSpec(_Strict):
    """One declared input. A ``default`` (even ``null``) makes it optional."""

    type: InputType = "string"
    description: str | None = None
    default: Any = None
    enum: list[Any] | None = None
    coerce: bool = Field(
        False,
        description="type string only: a value of another type is turned into text as "
        "Python's str() does (promptflow's rule for its string inputs), instead of refused.",
    )

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


class ModelParams(_Strict):
    """Parameters of a model call; set in ``defaults`` or on a step."""

    model: str | None = None
    server: str | None = Field(
        None, description="A server named under servers: (or in the user config file)."
    )
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_completion_tokens: int | None = Field(None, gt=0)
    seed: int | None = None
    stop: str | list[str] | None = None
    reasoning_effort: ReasoningEffort | None = None
    timeout_s: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0)
    extra: dict[str, Any] | None = Field(None, description="Passed to the API unchanged.")


class ServerPrice(_Strict):
    """USD per 1M tokens of one model on one server."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)


class AzureSpec(_Strict):
    """Azure OpenAI, through the openai SDK's ``AsyncAzureOpenAI``."""

    endpoint: str = Field(description="https://RESOURCE.openai.azure.com")
    api_version: str = Field(description="e.g. 2024-10-21")
    deployments: dict[str, str] = Field(
        default_factory=_new_dict,
        description="model name -> deployment name (a model not listed is its own deployment)",
    )


class ServerSpec(_Strict):
    """One OpenAI-compatible server. A key is never written here: ``api_key_env`` names the
    environment variable that holds it."""

    base_url: str | None = Field(None, description="e.g. http://localhost:11434/v1")
    api_key_env: str | None = Field(
        None, description="The environment variable holding the key; omit for a keyless server."
    )
    headers: dict[str, str] = Field(
        default_factory=_new_dict, description="Sent with every request."
    )
    organization: str | None = None
    project: str | None = None
    timeout_s: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0)
    rpm: int | None = Field(None, gt=0, description="Requests per minute sent to this server.")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute sent to this server.")
    azure: AzureSpec | None = None
    max_tokens_param: Literal["max_completion_tokens", "max_tokens"] = Field(
        "max_completion_tokens",
        description="The request parameter that carries the output cap (older servers: max_tokens).",
    )
    tool_call_content: Literal["null", "empty"] | None = Field(
        None,
        description="content of an assistant message with tool calls: null (OpenAI) or an empty "
        'string; unset: null, and "" once the server refuses null.',
    )
    prices: dict[str, ServerPrice] | Literal["openai"] | None = Field(
        None,
        description="Prices of this server's models (USD per 1M tokens; '*' for every model), "
        "or 'openai' for flowrun's OpenAI price table. Default: the OpenAI table for OpenAI "
        "and Azure servers; none (unpriced) for a server with a base_url.",
    )


class Defaults(ModelParams):
    """Defaults for every model step unless the step overrides them."""

    cache: bool | None = None
    transcripts: bool | None = Field(
        None,
        description="false: do not store what model calls sent and got (sensitive data).",
    )


class Budget(_Strict):
    max_cost_usd: float = Field(
        gt=0, description="The run stops before a call that could pass this."
    )


class ToolDef(_Strict):
    """A Python function a chat step may let the model call."""

    function: str = Field(description="module:callable, importable or next to the workflow file")
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="JSON schema; default: from the signature"
    )
    timeout_s: float | None = Field(None, gt=0)


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]
    name: str | None = None


class StepBase(_Strict):
    """Fields every step type has."""

    description: str | None = None
    needs: list[str] = Field(default_factory=_new_list)
    when: Any = Field(None, description="Rendered; a falsy result skips the step.")
    foreach: Any = Field(
        None, description="A list (usually a template); the step runs once per item."
    )
    max_concurrency: int = Field(8, gt=0, description="Bound on concurrent foreach items.")
    output_schema: dict[str, Any] | str | None = Field(
        None, description="JSON schema (inline or a file path) the output must validate against."
    )
    cache: bool | None = None


class _PromptFields(BaseModel):
    prompt: str | None = None
    system: str | None = None
    messages: list[Message] | None = None
    messages_template: str | None = Field(
        None,
        description="A template whose rendered text is split into messages at role lines "
        "('# system:', '# user:', '# assistant:', and '# function:' followed by '## name:' and "
        "'## content:' lines), as promptflow chat prompts are.",
    )
    images: list[str | None] | None = None
    image_detail: Literal["low", "high", "auto"] | None = None


class ChatStep(StepBase, ModelParams, _PromptFields):
    type: Literal["chat"]
    response_format: Literal["text", "json"] | None = None
    tools: list[str] | None = None
    tool_choice: str | None = Field(None, description="auto, none, required, or a tool name")
    max_tool_rounds: int = Field(8, gt=0)
    stream: bool = False
    thread: str | None = Field(None, description="Conversation key kept in the run store.")


class ExtractStep(StepBase, ModelParams, _PromptFields):
    type: Literal["extract"]
    schema_: dict[str, Any] | str = Field(
        alias="schema", description="JSON schema: inline, a file path, or module:PydanticModel"
    )
    max_repairs: int = Field(2, ge=0)


class ToolStep(StepBase):
    type: Literal["tool"]
    function: str = Field(description="module:callable")
    args: dict[str, Any] = Field(default_factory=_new_dict)
    timeout_s: float | None = Field(None, gt=0)
    check_args: bool = Field(
        True,
        description="false: a value the function's type hint refuses is passed as it is "
        "(promptflow's way) instead of failing the step; values that fit are still "
        'converted ("3" for an int).',
    )
    aggregate: bool = Field(
        False,
        description="Run once after every record of a batch (after the other steps in a "
        "single run): inputs.X and steps.Y.* are lists over the succeeded records, in input "
        "order. Values given to flowrun.log_metric become the run's metrics.",
    )


def aggregate_steps(spec: Workflow) -> list[str]:
    """The ids of the steps that run once over all records (``aggregate: true``), in order."""
    return [sid for sid, step in spec.steps.items() if getattr(step, "aggregate", False)]


class EmbedStep(StepBase):
    type: Literal["embed"]
    model: str | None = Field(None, description="default: text-embedding-3-small")
    input: Any = Field(description="One string or a list of strings")
    server: str | None = Field(
        None, description="A server named under servers: (or in the user config file)."
    )
    dimensions: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0)
    extra: dict[str, Any] | None = None


Step = Annotated[ChatStep | ExtractStep | ToolStep | EmbedStep, Field(discriminator="type")]
STEP_TYPES = ("chat", "extract", "tool", "embed")
# What the loader puts in place of a model name that is not a string (already reported).
INVALID_MODEL = "<invalid model>"


class Workflow(_Strict):
    """A flowrun workflow file, version 1.

    Top-level keys starting with ``x-`` are the user's own (e.g. to hold YAML anchors); the
    loader leaves them out before validation.
    """

    model_config = ConfigDict(json_schema_extra={"patternProperties": {"^x-": {}}})

    version: Literal[1]
    name: str

    @field_validator("version", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        """``true == 1`` in Python; in the file it is not a version."""
        if isinstance(value, bool):
            raise PydanticCustomError("literal_error", "Input should be 1", {"expected": "1"})
        return value

    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=_new_dict)
    defaults: Defaults = Field(default_factory=Defaults)
    budget: Budget | None = None
    servers: dict[str, ServerSpec] = Field(default_factory=_new_dict)
    tools: dict[str, ToolDef] = Field(default_factory=_new_dict)
    steps: dict[str, Step] = Field(min_length=1)
    outputs: dict[str, Any] = Field(default_factory=_new_dict)


def workflow_json_schema() -> dict[str, Any]:
    """The JSON schema of the workflow file format (what ``flowrun schema`` prints)."""
    schema = Workflow.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://flowrun.dev/schemas/workflow.schema.json"
    schema["title"] = "flowrun workflow"
    return schema
