"""Measure `flowrun convert promptflow` on promptflow's own example flows, against promptflow.

For every DAG flow (``flow.dag.yaml``) under EXAMPLES (promptflow's ``examples/flows``), in a
scratch copy of the tree: convert it, validate the result and, where promptflow's ``pf`` is
given, run ``pf flow test`` and ``flowrun run`` with the same inputs against the same loopback
server, then compare the recorded requests (roles, text, model, parameters, tools; promptflow's
explicit defaults such as ``temperature: 1`` count as unset, ``max_tokens`` is compared with
``max_completion_tokens``), the outputs and the metrics an aggregation node logs. Prints one line per flow and, with ``--markdown``,
the table of docs/migrating-from-promptflow.md.

Run it where promptflow is installed (in its own virtualenv, with the flows' requirements)::

    python scripts/compare_promptflow.py /tmp/pf/examples/flows --pf /work/pfvenv/bin/pf \\
        --flowrun .venv/bin/flowrun --markdown docs-table.md

The flowrun given must be able to import the flows' own requirements (``bs4``, ``tenacity``
...) for their python steps; a flow whose requirement neither side has is reported as such.
promptflow's sources are never copied into this repository: the flows stay in the scratch copy.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from flowrun.testing import LoopbackServer, RecordedRequest, Reply, ToolCall

#: The model's reply for every request, per flow (by default a number: evaluation flows parse
#: one, and the others pass it on as text).
REPLIES: dict[str, str] = {
    "standard/autonomous-agent": json.dumps(
        {
            "thoughts": {
                "text": "done",
                "reasoning": "r",
                "plan": "p",
                "criticism": "c",
                "speak": "s",
            },
            "command": {"name": "finish", "args": {"response": "42"}},
        }
    ),
    "standard/maths-to-code": "```python\nprint(5)\n```",
    "evaluation/eval-classification-accuracy": "App",
    "standard/conditional-flow-for-if-else": "5",
    "standard/conditional-flow-for-switch": "order_search",
}
DEFAULT_REPLY = "5"
REPLIES["standard/question-simulation"] = "continue"  # the branch that calls parse_chat


def _multi_turn(request: RecordedRequest) -> Reply:
    """eval-multi-turn-metrics: its grounding code wants a number, its llm nodes JSON."""
    grounding = "entailed by the CONTEXT" in request.text
    return Reply(content="5" if grounding else '{"score": 5}')


#: Variables this script sets that a flow's own code must not see: gen-docstring passes
#: OPENAI_API_VERSION to openai.OpenAI(), which refuses it; AZURE_OPENAI_ENDPOINT would make
#: flowrun's stand-in give an Azure connection where pf gives these flows an OpenAI one.
UNSET: dict[str, tuple[str, ...]] = {
    "standard/gen-docstring": ("OPENAI_API_VERSION", "AZURE_OPENAI_ENDPOINT"),
    "standard/autonomous-agent": ("AZURE_OPENAI_ENDPOINT",),
}

#: The London forecast chat/use_functions_with_chat_models' question asks for.
_FORECAST = ToolCall(
    "get_n_day_weather_forecast", {"location": "London, UK", "format": "celsius", "num_days": 7}
)


def _function_caller(req: RecordedRequest) -> Reply:
    """The model of chat/use_functions_with_chat_models: given ``functions`` (promptflow), it
    answers with a ``function_call``; given ``tools`` (flowrun), with the same call as a tool
    call, then, once the result is sent back, with text."""
    body = req.body or {}
    if body.get("functions"):
        return Reply(function_call=_FORECAST)
    if body.get("tools") and not any(m.get("role") == "tool" for m in req.messages):
        return Reply(tool_calls=[_FORECAST])
    return Reply(content="Rain all week in London.")


def _by_prompt(replies: dict[str, Any], default: str) -> Any:
    """A model that answers each llm node of a flow in the shape its code parses: the reply
    (text, or an object sent as JSON) of the first marker found in the request's messages."""

    def reply(req: RecordedRequest) -> Reply:
        text = "\n".join(str(m.get("content")) for m in req.messages)
        for marker, answer in replies.items():
            if marker in text:
                return Reply(content=answer if isinstance(answer, str) else json.dumps(answer))
        return Reply(content=default)

    return reply


#: evaluation/eval-single-turn-metrics: each llm node parses its own JSON shape.
_SINGLE_TURN = {
    "Identify if answer is noncommittal": {
        "question": "Which tent is the most waterproof?",
        "noncommittal": False,
    },
    "statement_X, reason, and attributed": {
        "result": [
            {
                "statement_1": "The Alpine Explorer Tent",
                "reason": "in context",
                "attributed": "Yes",
            },
            {"statement_2": "3000m", "reason": "not in context", "attributed": "No"},
        ]
    },
    "Extract following from given question and ground truth": {
        "statements that are present in both the answer and the ground truth": ["Alpine"],
        "statements present in the answer but not found in the ground truth": [],
        "relevant statements found in the ground truth but omitted in the answer": ["3000m"],
    },
    "engagement and tone": {"accuracy and relevance": 5, "score": 4.5, "overall": "Good."},
    "Perceived intelligence is the degree": {"relevance": "Direct.", "score": 3},
}

#: evaluation/eval-summarization: G-Eval asks each dimension for 20 samples (n=20) of a score.
_SUMMARIZATION = {
    "Coherence (1-5)": "4",
    "Consistency (1-5)": "5",
    "Fluency (1-3)": "2",
    "Relevance (1-5)": "3",
}


#: Flows that need a reply that depends on the request.
def _autogpt(request: RecordedRequest) -> Reply:
    """autonomous-agent: run its python function once, then finish (legacy function calls)."""
    if any(m.get("role") == "function" for m in request.messages):
        return Reply(function_call=ToolCall("finish", {"response": "42"}))
    return Reply(function_call=ToolCall("python", {"command": "print(6 * 7)"}))


RESPONDERS: dict[str, Callable[[RecordedRequest], Reply]] = {
    "evaluation/eval-multi-turn-metrics": _multi_turn,
    "standard/autonomous-agent": _autogpt,
    "chat/use_functions_with_chat_models": _function_caller,
    "evaluation/eval-single-turn-metrics": _by_prompt(_SINGLE_TURN, "4"),
    "evaluation/eval-summarization": _by_prompt(_SUMMARIZATION, "1"),
}
for _flow in ("web-classification", "flow-with-additional-includes", "flow-with-symlinks"):
    REPLIES[f"standard/{_flow}"] = '{"category": "App", "evidence": "Both"}'

#: Inputs given to both sides where the flow has no default and no data.jsonl, or where its
#: default needs the network (``PAGE`` is a page served by this script).
INPUTS: dict[str, dict[str, Any]] = {
    "standard/web-classification": {"url": "PAGE"},
    "standard/flow-with-additional-includes": {"url": "PAGE"},
    "standard/flow-with-symlinks": {"url": "PAGE"},
    "chat/promptflow-copilot": {"question": "How do I test a flow?"},
    "standard/describe-image": {"input_image": "IMAGE"},  # a PNG written by this script
    "chat/chat-with-image": {
        "question": [
            {"data:image/png;base64": "IMAGE_BASE64"},  # inline: pf fetches no 127.0.0.1 URL
            "How many colors can you see?",
        ]
    },
    "integrations/continuous-monitoring-with-pipeline/flows/standard/simple-summarization": {
        "answer": "Tides are caused by the moon. They rise and fall twice a day."
    },
}
PAGE_HTML = (
    b"<html><head><title>Tide tables</title></head><body><h1>Tide tables</h1>"
    b"<p>An app that shows the tides of every harbour, for sailors and anglers.</p></body></html>"
)

#: Why a flow cannot be compared offline, or what its difference is (written by hand, kept
#: next to the measurement so the table says why).
NOTES: dict[str, str] = {
    "integrations/azure-ai-language/analyze_conversations": "not supported: Azure AI Language"
    " package tools (an Azure-only service)",
    "integrations/azure-ai-language/analyze_documents": "not supported: Azure AI Language"
    " package tools (an Azure-only service)",
    "integrations/azure-ai-language/multi_intent_conversational_language_understanding": "not"
    " supported: an Azure AI Language package tool (an Azure-only service); its llm node names"
    " no model",
    "integrations/llmlingua-prompt-compression/gsm8k_example": "not supported: the LLMLingua"
    " package tool (a local model from Hugging Face)",
    "chat/promptflow-copilot": "not supported: the vector index lookup is an Azure ML package"
    " tool (promptflow_vectordb)",
    "chat/chat-with-pdf": "after its requirements (faiss-cpu, PyPDF2); it downloads a PDF"
    " (network): not compared offline",
    "chat/chat-with-image": "the gpt-4v node converts; compared with the image given inline (pf"
    " refuses to fetch one from 127.0.0.1): its `question` is a list mixing an image and text,"
    " which pf sends as an image part and a text part and the converted prompt renders as text"
    " (reported)",
    "chat/use_functions_with_chat_models": "compared with a scripted function_call (a tool"
    " call for flowrun): the first request's messages are identical, its chat history's"
    " `# function:` message included; `functions` become flowrun tools (reported), so flowrun"
    " sends tools instead of functions and runs the function in a tool loop (2 requests), and"
    " run_function, which reads the reply's function_call, gets the final text and fails",
    "evaluation/eval-multi-turn-metrics": "its grounding node calls promptflow.tools.aoai chat"
    " (stand-in); pf's YAML round trip (ruamel.yaml) turns `\\\\n` into `\\ \\n`"
    " in one message; concat_scores' `grounding: str` gets a number and aggregate_results'"
    " `metrics: str` a list, passed as they are, as pf does (`check_args: false`)",
    "evaluation/eval-single-turn-metrics": "each llm node answered in the JSON shape its code"
    " parses (scripted per prompt); the calculate nodes' float scores go into concat_scores'"
    " `str` parameters, and every record's list into the aggregation's `metrics: str`, as they"
    " are, as pf does (`check_args: false`)",
    "evaluation/eval-summarization": "after its requirements (tenacity); G-Eval asks each"
    " dimension for n=20 samples of a score, scripted per prompt (the loopback answers n choices)",
    "standard/basic": "its own Python calls the legacy completions API (/v1/completions):"
    " answered by the loopback server, the same request on both sides",
    "standard/basic-with-connection": "CustomConnection from BASIC_CUSTOM_CONNECTION_*; its own"
    " Python calls the legacy completions API (/v1/completions), answered by the loopback"
    " server",
    "standard/autonomous-agent": "its own Python calls promptflow.tools.openai chat with"
    " functions (flowrun's stand-in); compared with scripted function calls (its python tool,"
    " then finish) and the current time it writes into its prompt masked",
    "standard/conditional-flow-for-if-else": "no model request; its content_safety_check"
    " returns random.choice([True, False]), so the branch (and the output) differs by chance",
    "standard/customer-intent-extraction": "needs its requirements (langchain<0.2)",
    "standard/describe-image": "compared with a local PNG (its default is fetched from the"
    " network); its python node takes and returns promptflow's Image (flowrun's stand-in; it"
    " needs Pillow); the output image is a data: URL in flowrun, a file pf writes"
    ' (`{"data:image/png;path": ...}`)',
    "standard/gen-docstring": "its prompt.py calls `render_jinja_template(prompt=...)`, which"
    " promptflow-tools 1.6.1 refuses (TypeError); flowrun's stand-in takes that earlier name"
    " too, and the flow runs (2 requests, through the openai SDK in its own code)",
    "standard/question-simulation": "compared with the reply `continue` (the branch whose"
    " python node calls promptflow.tools.common.parse_chat: flowrun's stand-in)",
    "evaluation/eval-qna-non-rag": "its embedding nodes are embed steps; ada_similarity differs"
    " after the 7th digit: the OpenAI SDK asks for base64 (float32) vectors, flowrun for JSON"
    " floats",
    "evaluation/eval-qna-rag-metrics": "one character differs, by a promptflow bug: `pf flow"
    " test` writes the flow to a temporary flow.dag.yaml with ruamel.yaml and reads it back,"
    " and ruamel.yaml 0.19.1 folds the long `documents` default right after an escaped"
    " backslash, so the copy reads `\\ n` where the flow has `\\n`; flowrun sends the default"
    " as written",
    "standard/web-classification": "compared with a page served locally for its url input",
    "standard/flow-with-additional-includes": "compared with a page served locally",
    "standard/flow-with-symlinks": "after its create_symlinks.py; compared with a page served"
    " locally",
}

DEFAULTS = {
    "temperature": 1.0,
    "top_p": 1.0,
    "stream": False,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "n": 1,
    "user": "",
    "logit_bias": {},
}


#: Text a flow writes into its requests that differs from run to run: masked on both sides.
MASKS: dict[str, str] = {"standard/autonomous-agent": r"The current time and date is [^\"]*"}


def masked(name: str, request: dict[str, Any]) -> dict[str, Any]:
    pattern = MASKS.get(name)
    return json.loads(re.sub(pattern, "(masked)", json.dumps(request))) if pattern else request


def normalise(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """A request body with promptflow's explicit defaults removed and max_tokens renamed; for
    embeddings, the two differences the docs name (one text as a list of one, and the vectors'
    transfer encoding: the OpenAI SDK asks for base64, flowrun for floats; the same vector)."""
    body = dict(request)
    if "max_tokens" in body and path.endswith("/chat/completions"):
        body["max_completion_tokens"] = body.pop("max_tokens")
    body.pop("stream_options", None)
    if path.endswith("/embeddings"):
        body.pop("encoding_format", None)
        if isinstance(body.get("input"), str):
            body["input"] = [body["input"]]
    return {k: v for k, v in body.items() if not (k in DEFAULTS and v == DEFAULTS[k])}


def flows(examples: Path) -> list[str]:
    return sorted(
        str(p.parent.relative_to(examples))
        for p in examples.rglob("flow.dag.yaml")
        if not any(part.endswith("-maf") or part.startswith(".") for part in p.parts)
    )


def serve_page() -> str:
    """Serve PAGE_HTML on the loopback interface; its URL."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(PAGE_HTML)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/tides.html"


def tiny_png() -> bytes:
    """A 2x1 PNG (a red and a blue pixel), for describe-image's and chat-with-image's image."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + bytes([255, 0, 0, 0, 0, 255]))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def flow_inputs(flow: Path) -> dict[str, Any]:
    """The inputs given to both sides: none where the flow has a default (each side applies
    its own), the first data record's column for an input without one."""
    dag = yaml.safe_load((flow / "flow.dag.yaml").read_text(encoding="utf-8")) or {}
    declared = dag.get("inputs") or {}
    missing = [k for k, v in declared.items() if not (isinstance(v, dict) and "default" in v)]
    data = flow / "data.jsonl"
    if missing and data.exists():
        first = json.loads(data.read_text(encoding="utf-8").splitlines()[0])
        return {k: first[k] for k in missing if k in first}
    return {}


def _walk(value: Any):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def connections(flow: Path) -> dict[str, str]:
    """Connection names the flow uses (variants included), with promptflow's connection type
    for each: Azure OpenAI where the flow's author wrote for it (a gpt-4v ``aoai`` tool, a
    ``deployment_name`` without a ``model``, python code taking only AzureOpenAIConnection)."""
    dag = yaml.safe_load((flow / "flow.dag.yaml").read_text(encoding="utf-8")) or {}
    code = " ".join(p.read_text(encoding="utf-8", errors="replace") for p in flow.glob("*.py"))
    azure_code = "AzureOpenAIConnection" in code and "OpenAIConnection" not in code.replace(
        "AzureOpenAIConnection", ""
    )
    names: dict[str, str] = {}
    for node in _walk(dag.get("nodes", []) + [dag.get("node_variants", {})]):
        if "inputs" not in node and "connection" not in node:
            continue
        inputs = node.get("inputs") or {}
        tool = str((node.get("source") or {}).get("tool") or "")
        for value in [node.get("connection"), *inputs.values()]:
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][\w-]*", value):
                continue
            if value != node.get("connection") and "connection" not in value:
                continue
            if node.get("type") == "python" and "CustomConnection" in code:
                names[value] = "custom"
            elif (
                "aoai" in tool
                or (node.get("type") == "python" and azure_code)
                or ("deployment_name" in inputs and "model" not in inputs)
            ):
                names[value] = "azure_open_ai"
            else:
                names.setdefault(value, "open_ai")
    return names


def create_connections(pf: str, names: dict[str, str], url: str, env: dict, tmp: Path) -> None:
    for name, kind in names.items():
        if kind == "custom":
            text = (
                f"name: {name}\ntype: custom\nconfigs:\n  api_base: {url}\n  api_type: openai\n"
                f"  api_version: '2024-02-01'\nsecrets:\n  api_key: sk-test\n"
            )
        elif kind == "azure_open_ai":
            text = (
                f"name: {name}\ntype: azure_open_ai\napi_key: sk-test\napi_base: {url}\n"
                f"api_type: azure\napi_version: '2024-02-01'\n"
            )
        else:
            # an organization: gen-docstring's code copies it into an environment variable
            text = (
                f"name: {name}\ntype: open_ai\napi_key: sk-test\nbase_url: {url}\n"
                "organization: org-test\n"
            )
        spec = tmp / f"{name}.yaml"
        spec.write_text(text, encoding="utf-8")
        subprocess.run(
            [pf, "connection", "create", "-f", str(spec)], env=env, capture_output=True, check=False
        )


def flow_env(flow: Path, url: str) -> dict[str, str]:
    """The flow's literal environment_variables (promptflow sets them; a flowrun user exports
    them) and the Azure variables some flows' own code reads."""
    dag = yaml.safe_load((flow / "flow.dag.yaml").read_text(encoding="utf-8")) or {}
    env = {
        k: str(v)
        for k, v in (dag.get("environment_variables") or {}).items()
        if not str(v).startswith("${")
    }
    env.update(
        AZURE_OPENAI_API_KEY="sk-test",
        AZURE_OPENAI_API_BASE=url,
        AZURE_OPENAI_ENDPOINT=url,
        OPENAI_API_VERSION="2024-02-01",
    )
    return env


def connection_env(names: dict[str, str], url: str) -> dict[str, str]:
    """The connections' values for flowrun's stand-in; an OpenAI one gets no ``_API_BASE``,
    which would make a ``Union[AzureOpenAIConnection, OpenAIConnection]`` parameter Azure
    where pf passes the OpenAI connection (gen-docstring's and autonomous-agent's code ask)."""
    env: dict[str, str] = {}
    for name, kind in names.items():
        prefix = re.sub(r"\W", "_", name).upper()
        if kind != "open_ai":
            env[f"{prefix}_API_BASE"] = url
        env.update(
            {
                f"{prefix}_API_KEY": "sk-test",
                f"{prefix}_BASE_URL": url,
                f"{prefix}_API_TYPE": "openai",
                f"{prefix}_API_VERSION": "2024-02-01",
                f"{prefix}_ORGANIZATION": "org-test",
            }
        )
    return env


def failure_line(text: str) -> str:
    """pf's own line saying why the test failed (its logs around it are noise)."""
    for line in reversed(text.splitlines()):
        if "pf.flow.test failed" in line or "Error" in line.split(":")[0]:
            return line.strip()[:400]
    return last_lines(text)


def last_lines(text: str, n: int = 1) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-n:])[:300]


def measure(name: str, flow: Path, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"flow": name}
    if name == "standard/flow-with-symlinks":
        subprocess.run([sys.executable, "create_symlinks.py"], cwd=flow, check=False)
    conv = subprocess.run(
        [args.flowrun, "convert", "promptflow", str(flow), "--force", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    row["convert_rc"] = conv.returncode
    try:
        report = json.loads(conv.stdout)
    except ValueError:
        report = {}
    items = report.get("not_converted") or []
    text = lambda i: ": ".join(str(i[k]) for k in ("node", "what", "reason") if i.get(k))  # noqa: E731
    row["not_converted"] = [text(i) for i in items if i.get("blocking")]
    row["before_running"] = [text(i) for i in items if i.get("setup")]
    row["problems"] = [str(p) for p in report.get("problems") or []]
    if conv.returncode not in (0, 1):
        row["convert_error"] = "; ".join(row["problems"]) or last_lines(conv.stderr or conv.stdout)
        return row
    workflow = flow / "flowrun.yaml"
    val = subprocess.run(
        [args.flowrun, "validate", str(workflow)], capture_output=True, text=True, check=False
    )
    row["validate_rc"] = val.returncode
    if val.returncode:
        row["validate_error"] = last_lines(val.stderr or val.stdout)
    if not args.pf:
        return row
    inputs = flow_inputs(flow)
    served = {"PAGE": args.page, "IMAGE": args.image}
    image = base64.b64encode(tiny_png()).decode("ascii")
    given = json.loads(json.dumps(INPUTS.get(name, {})).replace('"IMAGE_BASE64"', f'"{image}"'))
    inputs.update({k: served.get(v, v) if isinstance(v, str) else v for k, v in given.items()})
    inputs_file = tmp / (name.replace("/", "_") + ".inputs.json")
    inputs_file.write_text(json.dumps(inputs), encoding="utf-8")
    server = LoopbackServer(validator=None).start()
    try:
        server.default = RESPONDERS.get(name) or Reply(content=REPLIES.get(name, DEFAULT_REPLY))
        names = connections(flow)
        env = {
            **os.environ,
            **server.env(),
            "PF_DISABLE_TRACING": "true",
            "PROMPTFLOW_DISABLE_TRACE": "true",
            **flow_env(flow, server.url),
            **connection_env(names, server.url),
        }
        for key in UNSET.get(name, ()):
            env.pop(key, None)
        create_connections(args.pf, names, server.url, env, tmp)
        pf_args = [
            f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in inputs.items()
        ]
        output_file = flow / ".promptflow" / "flow.output.json"
        output_file.unlink(missing_ok=True)
        metrics_file = flow / ".promptflow" / "flow.metrics.json"
        metrics_file.unlink(missing_ok=True)
        pf = subprocess.run(
            [
                args.pf,
                "flow",
                "test",
                "--flow",
                str(flow),
                *(["--inputs", *pf_args] if pf_args else []),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        pf_requests = [
            (q.path, masked(name, normalise(q.path, q.body or {}))) for q in server.requests
        ]
        row["pf_rc"] = pf.returncode
        if pf.returncode:
            row["pf_error"] = failure_line(pf.stderr + "\n" + pf.stdout)
        pf_outputs = (
            json.loads(output_file.read_text(encoding="utf-8"))
            if output_file.exists() and not pf.returncode
            else None
        )
        pf_metrics = (
            json.loads(metrics_file.read_text(encoding="utf-8"))
            if metrics_file.exists() and not pf.returncode
            else None
        )
        server.requests.clear()
        run = subprocess.run(
            [args.flowrun, "run", str(workflow), "--inputs-file", str(inputs_file), "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=flow,
            timeout=600,
        )
        fr_requests = [
            (q.path, masked(name, normalise(q.path, q.body or {}))) for q in server.requests
        ]
    finally:
        server.stop()
    row["flowrun_rc"] = run.returncode
    try:
        result = json.loads(run.stdout)
    except ValueError:
        result = {}
    if run.returncode:
        failed = [
            f"{k}: {v.get('error')}"
            for k, v in (result.get("steps") or {}).items()
            if isinstance(v, dict) and v.get("error")
        ]
        row["flowrun_error"] = (failed[0] if failed else last_lines(run.stderr or run.stdout))[:300]
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        stem = args.dump / name.replace("/", "_")
        for side, reqs in (("pf", pf_requests), ("flowrun", fr_requests)):
            Path(f"{stem}.{side}.json").write_text(json.dumps(reqs, indent=1), encoding="utf-8")
    row["requests"] = len(pf_requests)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731 - requests may come in any order
    same = sorted(map(key, pf_requests)) == sorted(map(key, fr_requests))
    row["requests_same"] = same and pf.returncode == 0
    if not same:
        row["requests_diff"] = first_difference(pf_requests, fr_requests)
    fr_outputs = result.get("outputs")
    row["outputs_same"] = (
        pf_outputs is not None
        and run.returncode == 0
        and json.loads(json.dumps(fr_outputs)) == pf_outputs
    )
    if pf_metrics:  # an aggregation node's log_metric calls: the same metrics too
        fr_metrics = json.loads(json.dumps(result.get("metrics") or {}))
        # flowrun keeps a NaN (or infinite) metric as its text, "nan": JSON has no NaN
        pf_metrics = {
            k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in pf_metrics.items()
        }
        row["metrics"] = pf_metrics
        row["metrics_same"] = fr_metrics == pf_metrics
        if not row["metrics_same"]:
            row["outputs_same"] = False
            row["metrics_diff"] = f"pf {json.dumps(pf_metrics)[:150]} / flowrun" + (
                f" {json.dumps(fr_metrics)[:150]}"
            )
    if pf_outputs is not None and not row["outputs_same"]:
        row["outputs_diff"] = (
            f"pf {json.dumps(pf_outputs)[:150]} / flowrun {json.dumps(fr_outputs)[:150]}"
        )
    return row


def first_difference(pf: list, fr: list) -> str:
    if len(pf) != len(fr):
        return f"{len(pf)} requests from pf, {len(fr)} from flowrun"
    for (p_path, p), (f_path, f) in zip(sorted(pf, key=str), sorted(fr, key=str), strict=True):
        if p_path != f_path:
            return f"path {p_path} / {f_path}"
        for k in sorted(set(p) | set(f)):
            if p.get(k) != f.get(k):
                a, b = json.dumps(p.get(k)), json.dumps(f.get(k))
                at = next(
                    (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                    min(len(a), len(b)),
                )
                start = max(0, at - 60)
                return f"{k}: pf ...{a[start : at + 80]} / flowrun ...{b[start : at + 80]}"
    return "same requests in another order"


def status(row: dict[str, Any]) -> str:
    if "convert_error" in row:
        return f"does not convert: {row['convert_error']}"
    converts = (
        "converts"
        if row["convert_rc"] == 0 and row.get("validate_rc") == 0
        else "converts with problems reported"
        if row.get("validate_rc") == 0
        else "does not validate"
    )
    parts = [converts]
    if "pf_rc" in row:
        if row["pf_rc"]:
            parts.append(f"pf flow test fails offline ({row.get('pf_error', '')[:160]})")
        elif row.get("requests_same"):
            parts.append(
                f"identical requests ({row['requests']})"
                + ("; identical outputs" if row.get("outputs_same") else "")
            )
        else:
            parts.append(f"requests differ ({row.get('requests_diff', '')})")
        if row.get("flowrun_rc") and not row["pf_rc"]:
            parts.append(f"flowrun run fails ({row.get('flowrun_error', '')[:160]})")
        elif not row.get("outputs_same") and not row["pf_rc"] and "outputs_diff" in row:
            parts.append(f"outputs differ ({row['outputs_diff'][:160]})")
    return "; ".join(parts)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The docs table: one row per flow."""
    lines = ["| flow | converts | requests | outputs | notes |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        missing = re.search(r"No module named '([^']+)'", row.get("validate_error", ""))
        if row["convert_rc"] == 0 and row.get("validate_rc") == 0:
            conv = "yes"
        elif row.get("validate_rc") == 0:
            conv = "yes, with problems reported"
        elif missing:
            conv = f"needs `{missing.group(1)}`"
        else:
            conv = "no"
        if "pf_rc" not in row:
            req = out = "not compared"
        elif row["pf_rc"]:
            req = out = "pf fails offline"
        else:
            count = row.get("requests", 0)
            req = (
                ("identical" + (f" ({count})" if count else " (no model request)"))
                if row.get("requests_same")
                else "differ"
            )
            out = (
                "identical"
                if row.get("outputs_same")
                else "flowrun fails"
                if row.get("flowrun_rc")
                else "differ"
            )
        auto = (
            (row.get("not_converted") or [])[:1]
            + ([row["requests_diff"]] if req == "differ" and row.get("requests_diff") else [])
            + ([row["flowrun_error"]] if out == "flowrun fails" else [])
        )
        note = NOTES.get(row["flow"]) or "; ".join(auto)[:300]  # hand-written notes whole
        note = note.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {row['flow']} | {conv} | {req} | {out} | {note} |")
    return "\n".join(lines) + "\n"


def counts(rows: list[dict[str, Any]]) -> str:
    compared = [r for r in rows if "pf_rc" in r]
    return (
        f"{len(rows)} flows: "
        f"{sum(r['convert_rc'] == 0 and r.get('validate_rc') == 0 for r in rows)} convert clean,"
        f" {sum(bool(r.get('requests_same')) for r in compared)} identical requests"
        f" ({sum(bool(r.get('requests_same')) and not r.get('requests') for r in compared)}"
        " of them with no model request),"
        f" {sum(bool(r.get('outputs_same')) for r in compared)} identical outputs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("examples", type=Path, help="promptflow's examples/flows folder")
    parser.add_argument("--pf", help="promptflow's pf command (compare requests and outputs)")
    parser.add_argument("--flowrun", default=shutil.which("flowrun") or "flowrun")
    parser.add_argument("--only", action="append", help="a flow (e.g. chat/chat-basic)")
    parser.add_argument("--json", type=Path, help="write every row as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the docs table here")
    parser.add_argument("--dump", type=Path, help="write each side's requests here, per flow")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="no measuring: the table from these --json files"
        " (a flow in a later file replaces the earlier row)",
    )
    args = parser.parse_args()
    if args.merge:
        merged = {r["flow"]: r for path in args.merge for r in json.loads(path.read_text())}
        rows = [merged[k] for k in sorted(merged)]
        print(counts(rows))
        if args.markdown:
            args.markdown.write_text(markdown(rows), encoding="utf-8")
        return 0
    args.page = serve_page()
    tmp = Path(tempfile.mkdtemp(prefix="pf-compare-"))
    args.image = str(tmp / "two-pixels.png")
    Path(args.image).write_bytes(tiny_png())
    tree = tmp / "flows"
    shutil.copytree(args.examples, tree, symlinks=True)
    rows = []
    for name in flows(tree):
        if args.only and name not in args.only:
            continue
        row = measure(name, tree / name, args, tmp)
        rows.append(row)
        print(f"{name}: {status(row)}", flush=True)
    print("\n" + counts(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown(rows), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
