"""Converting flows written for other tools into flowrun workflows.

May import: ``format``, ``errors``, ``results``.

from flowrun.convert import convert_promptflow, write_conversion
conversion = convert_promptflow("flows/chat-basic")       # reads, converts, writes nothing
report = write_conversion(conversion)                      # writes flows/chat-basic/flowrun.yaml
print("\\n".join(report.lines()), report.runnable)
"""

from __future__ import annotations

from flowrun.convert.pf_yaml import check_overwrite, output_state, written_by_converter
from flowrun.convert.promptflow import Conversion, convert_promptflow, write_conversion
from flowrun.convert.report import (
    ConversionFailed,
    FlowProblem,
    Issue,
    NodeEntry,
    NotAFlow,
    NotRunnable,
    Report,
)

__all__ = [
    "Conversion",
    "ConversionFailed",
    "FlowProblem",
    "Issue",
    "NodeEntry",
    "NotAFlow",
    "NotRunnable",
    "Report",
    "check_overwrite",
    "convert_promptflow",
    "output_state",
    "write_conversion",
    "written_by_converter",
]
