"""Tools of the semantic-similarity example."""

from __future__ import annotations

import math

from pydantic import BaseModel


class Match(BaseModel):
    rank: int
    index: int
    document: str
    score: float


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"vectors of different lengths: {len(a)} and {len(b)}")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def rank(
    query: list[float], vectors: list[list[float]], documents: list[str], top_k: int = 3
) -> list[Match]:
    """The top_k documents most similar to the query, best first.

    Args:
        query: The query's embedding.
        vectors: One embedding per document, in the documents' order.
        documents: The documents' texts.
        top_k: How many matches to return.
    """
    if len(vectors) != len(documents):
        raise ValueError(f"{len(vectors)} vectors for {len(documents)} documents")
    scores = sorted(
        ((cosine(query, v), i) for i, v in enumerate(vectors)), key=lambda s: (-s[0], s[1])
    )
    return [
        Match(rank=r + 1, index=i, document=documents[i], score=round(score, 6))
        for r, (score, i) in enumerate(scores[:top_k])
    ]
