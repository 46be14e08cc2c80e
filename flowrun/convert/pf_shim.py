"""The promptflow ``@tool`` stand-in now lives in ``flowrun.format.promptflow_stub`` (the
loader installs it); this name stays for code that imported it from here."""

from flowrun.format.promptflow_stub import install_promptflow_stub, tool

__all__ = ["install_promptflow_stub", "tool"]
