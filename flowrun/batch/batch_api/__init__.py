"""Batch runs through the OpenAI Batch API (``flowrun run FILE --batch R --via batch-api``).

The DAG advances in waves: each wave submits the model requests of every record that can
move, as JSONL files through the Files and Batches APIs, waits for the batches (polling with
backoff), and hands each record its results; tool steps and the rest run locally between
waves. Modules: ``lines`` (file formats, ids, limits), ``transport`` (the API calls),
``state`` (what the run store keeps, for resume), ``settings`` (polling, limits, the wave
budget), ``wave_client`` (the model client that parks requests), ``coordinator`` (the
waves), ``tracking`` (creating, polling and collecting a wave's batches), ``runner`` (the
batch runner over them), ``manage`` (list and cancel), ``progress`` (the display). See
``docs/batch-api.md``.
"""

from flowrun.batch.batch_api.lines import Limits
from flowrun.batch.batch_api.settings import WaveSettings

__all__ = ["Limits", "WaveSettings"]
