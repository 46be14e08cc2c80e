"""Named servers in the file and in the user config: what validate and run say about them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.helpers import flowrun


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


SERVERS = """\
version: 1
name: servers
servers:
  local:
    base_url: http://127.0.0.1:8080/v1
    api_key_env: LOCAL_LLM_KEY
defaults:
  model: gpt-4o-mini
  server: local
steps:
  ask:
    type: chat
    prompt: hi
    server: lokal
"""


def test_an_unknown_server_is_exit_2_at_its_place_with_a_suggestion(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_LLM_KEY", "k")
    wf = write(tmp_path / "wf.yaml", SERVERS)
    res = flowrun("validate", wf)
    assert res.code == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith(f"{wf}:14:13: unknown server 'lokal' (used by step 'ask')")
    assert "(did you mean 'local'?)" in line
    assert "config.yaml" in line  # where else a server can be defined


def test_a_missing_key_variable_is_exit_2_at_api_key_env_for_validate_and_run(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("LOCAL_LLM_KEY", raising=False)
    wf = write(tmp_path / "wf.yaml", SERVERS.replace("server: lokal", "server: local"))
    expected = (
        f"{wf}:6:18: server 'local': the environment variable LOCAL_LLM_KEY "
        "(its api_key_env) is not set; export it"
    )
    records = tmp_path / "in.jsonl"
    records.write_text('{"q": "a"}\n')
    out = tmp_path / "out.jsonl"
    batch = ("run", wf, "--batch", records, "--output", out)
    for args in (("validate", wf), ("run", wf), batch, (*batch, "--via", "batch-api")):
        res = flowrun(*args)
        assert res.code == 2, res.output
        assert expected in res.stderr.splitlines()
        assert "Traceback" not in res.output
        assert not out.exists()  # a batch stops before it starts: no output, no batch stored
    monkeypatch.setenv("LOCAL_LLM_KEY", "k")
    res = flowrun("validate", wf)
    assert res.code == 0, res.output
    # estimate and --mock need no key
    monkeypatch.delenv("LOCAL_LLM_KEY")
    assert flowrun("estimate", wf).code == 0


def test_malformed_urls_keys_in_the_file_and_key_headers_are_reported(tmp_path, monkeypatch):
    wf = write(
        tmp_path / "wf.yaml",
        """\
        version: 1
        name: bad
        servers:
          a:
            base_url: localhost:8080/v1
            api_key: sk-secret-value-1234
          b:
            base_url: https://user:pw@example.test/v1
            headers: {Authorization: Bearer xyz}
            api_key_env: sk-proj-abcdefghijklmnop
          c:
            azure: {endpoint: "not a url", api_version: "2024-10-21"}
        steps:
          ask: {type: chat, model: gpt-4o-mini, prompt: hi, server: a}
        """,
    )
    res = flowrun("validate", wf)
    assert res.code == 2
    lines = res.stderr.strip().splitlines()
    assert lines == [
        f"{wf}:5:15: server 'a': base_url 'localhost:8080/v1' is not an http:// or https:// "
        "URL with a host (e.g. http://localhost:8000/v1)",
        f"{wf}:6:5: server 'a': api_key: a key is never written in a file: put it in an "
        "environment variable and name that variable in api_key_env",
        f"{wf}:8:15: server 'b': base_url holds a user or password: a key is never written in "
        "a file: put it in an environment variable and name that variable in api_key_env",
        f"{wf}:9:15: server 'b': header Authorization: a key is never written in a file: put "
        "it in an environment variable and name that variable in api_key_env",
        f"{wf}:10:18: server 'b': api_key_env is the NAME of the environment variable holding "
        "the key (letters, digits and _), never the key itself",
        f"{wf}:12:23: server 'c': azure.endpoint 'not a url' is not an http:// or https:// URL "
        "with a host (e.g. http://localhost:8000/v1)",
    ]
    for secret in ("sk-secret-value-1234", "sk-proj-abcdefghijklmnop", "xyz", ":pw@"):
        assert secret not in res.output


def test_servers_from_the_user_config_file(tmp_path, monkeypatch):
    config = write(
        tmp_path / "config.yaml",
        """\
        servers:
          team:
            base_url: http://127.0.0.1:9/v1
            api_key_env: TEAM_KEY
            prices: {"*": {input: 0, output: 0}}
        """,
    )
    monkeypatch.setenv("FLOWRUN_CONFIG", str(config))
    monkeypatch.setenv("TEAM_KEY", "k")
    wf = write(
        tmp_path / "wf.yaml",
        """\
        version: 1
        name: uses-team
        steps:
          ask: {type: chat, model: llama3, prompt: hi, server: team, max_completion_tokens: 5}
        budget: {max_cost_usd: 0.01}
        """,
    )
    assert flowrun("validate", wf).code == 0  # priced at $0 by the server: the budget holds
    monkeypatch.delenv("TEAM_KEY")
    res = flowrun("validate", wf)
    assert res.code == 2
    assert res.stderr.strip() == (
        f"{config}:4:18: server 'team': the environment variable TEAM_KEY (its api_key_env) "
        "is not set; export it"
    )
    write(config, "servers:\n  team:\n    base_url: [1]\n")
    res = flowrun("validate", wf)
    assert res.code == 2
    assert res.stderr.startswith(f"{config}:3:15: ")
    assert "unknown server 'team'" in res.stderr  # the invalid one is not used
    monkeypatch.setenv("FLOWRUN_CONFIG", str(tmp_path / "missing.yaml"))
    res = flowrun("validate", wf)
    assert res.code == 2
    assert f"{tmp_path / 'missing.yaml'}:1:1: no such file (named by FLOWRUN_CONFIG)" in res.stderr


def test_a_workflow_server_overrides_the_config_one_and_a_server_cannot_be_a_template(
    tmp_path, monkeypatch
):
    config = write(tmp_path / "config.yaml", "servers:\n  x: {base_url: nope}\n")
    monkeypatch.setenv("FLOWRUN_CONFIG", str(config))
    wf = write(
        tmp_path / "wf.yaml",
        """\
        version: 1
        name: own
        servers:
          x: {base_url: "http://127.0.0.1:9/v1"}
        steps:
          ask: {type: chat, model: m, prompt: hi, server: x}
          two: {type: chat, model: m, prompt: hi, server: "{{ inputs.s }}"}
        """,
    )
    res = flowrun("validate", wf)
    assert res.code == 2
    assert res.stderr.strip().splitlines() == [
        f"{wf}:7:51: step 'two': server cannot be a template (it is read before the run)",
        f"{wf}:7:51: unknown server '{{{{ inputs.s }}}}' (used by step 'two') (servers: x); "
        f"define it under servers: in the workflow or in {config}",
    ]


def test_estimate_prices_each_step_at_its_servers_prices(tmp_path):
    wf = write(
        tmp_path / "wf.yaml",
        """\
        version: 1
        name: est
        servers:
          local: {base_url: "http://127.0.0.1:9/v1", prices: {"*": {input: 0, output: 0}}}
          lan: {base_url: "http://127.0.0.1:9/v1"}
          dear: {prices: {gpt-4o-mini: {input: 1000, output: 1000}}}
        defaults: {model: gpt-4o-mini, max_completion_tokens: 100}
        steps:
          free: {type: chat, prompt: hi, server: local}
          unknown: {type: chat, prompt: hi, server: lan}
          costly: {type: chat, prompt: hi, server: dear}
          openai: {type: chat, prompt: hi}
        """,
    )
    res = flowrun("estimate", wf, "--json")
    assert res.code == 0, res.output
    import json

    steps = json.loads(res.stdout)["steps"]
    assert steps["free"]["server"] == "local" and steps["free"]["worst_case_usd"] == 0.0
    assert steps["unknown"]["worst_case_usd"] is None  # gpt-4o-mini's name, not its price
    assert steps["costly"]["worst_case_usd"] > 0.1  # 100 output tokens at $1000 per 1M
    assert "server" not in steps["openai"]
    assert 0 < steps["openai"]["worst_case_usd"] < 0.001
