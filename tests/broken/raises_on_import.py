"""A tool module whose import fails with a message of several lines."""

raise RuntimeError("configuration missing:\n  set TOOLS_HOME\n  then retry")
