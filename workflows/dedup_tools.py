"""Tools of the semantic-dedup example: group texts whose embeddings are close, then label groups."""

from __future__ import annotations

from pydantic import BaseModel
from similarity_tools import cosine


class Group(BaseModel):
    indexes: list[int]  # positions in the input, ascending
    texts: list[str]


class Grouping(BaseModel):
    unique: list[str]  # the first text of every group, and every text without duplicates
    duplicate_groups: list[Group]  # groups of two or more, by their first index


class LabelledGroup(Group):
    label: str


def group_duplicates(texts: list[str], vectors: list[list[float]], threshold: float) -> Grouping:
    """Group texts whose embeddings have a cosine similarity of at least ``threshold``.

    Groups are single-link: A~B and B~C put A, B and C together. O(n^2) comparisons, which is
    fine for the few thousand texts one embeddings request takes.

    Args:
        texts: The texts, in input order.
        vectors: One embedding per text, in the same order.
        threshold: The least cosine similarity of two duplicates (0 to 1).
    """
    if len(texts) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {len(texts)} texts")
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if cosine(vectors[i], vectors[j]) >= threshold:
                parent[max(root(i), root(j))] = min(root(i), root(j))
    members: dict[int, list[int]] = {}
    for i in range(len(texts)):
        members.setdefault(root(i), []).append(i)
    groups = sorted(members.values())
    return Grouping(
        unique=[texts[g[0]] for g in groups],
        duplicate_groups=[
            Group(indexes=g, texts=[texts[i] for i in g]) for g in groups if len(g) > 1
        ],
    )


def label_groups(groups: list[Group], labels: list[str]) -> list[LabelledGroup]:
    """Attach the model's label to each group of duplicates (both lists in the same order)."""
    if len(groups) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(groups)} groups")
    return [
        LabelledGroup(indexes=g.indexes, texts=g.texts, label=label.strip())
        for g, label in zip(groups, labels, strict=True)
    ]
