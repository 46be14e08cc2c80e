"""Batch API output files are streamed to a temporary file and parsed a chunk at a time:
a big output file is never held in memory whole."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

from flowrun.batch.batch_api.coordinator import Tracked, WaveCoordinator, WaveSettings
from flowrun.batch.batch_api.lines import CHAT
from flowrun.batch.batch_api.transport import BatchSnapshot, BatchTransport
from flowrun.provider.client import OpenAIClient
from flowrun.store.batch_api_state import BatchState
from flowrun.testing import LoopbackServer
from flowrun.testing.batches import StoredFile


def result_line(cid: str, text: str) -> bytes:
    body = {
        "model": "gpt-4o-mini",
        "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5},
    }
    line = {"custom_id": cid, "response": {"status_code": 200, "body": body}, "error": None}
    return json.dumps(line).encode() + b"\n"


def test_a_30_mb_output_file_is_collected_in_a_few_mb(server: LoopbackServer) -> None:
    filler = "lorem ipsum " * 850  # ~10 KB per line
    data = b"".join(result_line(f"r{i}.other.00000000.a0", filler) for i in range(3_000))
    data += result_line("r0.wanted.00000000.a0", "the answer")
    assert len(data) > 30_000_000
    server.batch_api.files["file-big"] = StoredFile("file-big", "o.jsonl", "batch_output", data, 0)
    del data

    async def collect() -> tuple[int, object]:
        transport = BatchTransport(OpenAIClient())
        transport.client.sdk()  # the SDK client exists before measuring
        with BatchState() as state:
            coordinator = WaveCoordinator(transport, state, "run-x", settings=WaveSettings())
            answer = coordinator.request("r0.wanted.00000000.a0", CHAT, "gpt-4o-mini", b"{}", 1)
            tracked = Tracked("file-in", "batch-x", CHAT, "gpt-4o-mini", [
                "r0.wanted.00000000.a0"])  # fmt: skip
            snapshot = BatchSnapshot("batch-x", "completed", "file-in", output_file_id="file-big")
            tracemalloc.start()
            try:
                await coordinator._collect(tracked, snapshot)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            await transport.client.aclose()
            return peak, answer.result()

    peak, outcome = asyncio.run(collect())
    assert outcome.ok and outcome.reply.content == "the answer"
    assert peak < 12_000_000, f"peak {peak / 1e6:.1f} MB while collecting a 30 MB file"
