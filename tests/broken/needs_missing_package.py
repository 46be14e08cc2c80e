"""A tool module next to the workflow that imports a package that is not installed."""

import no_such_package_for_flowrun  # noqa: F401


def count_words(text: str) -> int:
    return len(text.split())
