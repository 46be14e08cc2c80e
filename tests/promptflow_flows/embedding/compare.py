import math
from typing import List

from promptflow.core import tool


@tool
def compare(a: List[float], b: List[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return round(dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))), 6)
