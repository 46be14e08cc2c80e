"""A pytest plugin (registered on install) giving every project a ``flowrun_server`` fixture.

```python
def test_my_workflow(flowrun_server):
    flowrun_server.add(Reply(content="hello"), match="Greet")
    result = run_workflow(load_workflow("flows/greet.yaml"), {"name": "Ada"}, store=False)
    assert result.outputs["greeting"] == "hello"
```
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowrun.testing.loopback import LoopbackServer


@pytest.fixture
def flowrun_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """A loopback OpenAI-compatible server that ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` point at."""
    with LoopbackServer() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        yield server
