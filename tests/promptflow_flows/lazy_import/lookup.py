from promptflow.core import tool


@tool
def lookup(topic: str) -> str:
    # imported when called, as promptflow's autonomous-agent does with its wiki_search.py
    from lazy_sibling_helpers import describe

    return describe(topic)
