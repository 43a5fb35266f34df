"""The deletion mutation of the fake: records really disappear upstream.

:func:`delete_share` removes a seeded share of the served records of every stream. Unlike
:meth:`Dataset.delete_parents` (a parent that stays listed while its child paths answer 404,
the race a client meets mid-run), a deleted record is gone from its list: a deleted application
or ingest source is no longer listed, its child paths answer 404 and its children disappear from
the ground truth with it.
"""

from __future__ import annotations

import random
import typing as t

from analytics_api.streams import STREAMS

from .data import PARENT_STREAMS, sort_key

if t.TYPE_CHECKING:
    from .data import Dataset


def _count(share: float, n: int) -> int:
    if share <= 0 or n == 0:
        return 0
    return min(n, max(1, round(share * n)))


def _dump_keys(data: Dataset) -> dict[str, list[str]]:
    return {s.name: [r[s.primary_key] for r in data.dump(s.name)] for s in STREAMS}


def delete_share(data: Dataset, share: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
    """Delete ``round(share * n)`` (at least 1 when ``share > 0``) records of every stream.

    Top-level streams lose records from their lists; a deleted parent takes all its children
    with it. Child streams then lose a share of the children of the parents still served (not
    of parents deleted with :meth:`Dataset.delete_parents`). The choice depends only on the
    dataset, the ``seed`` and how many deletions ran before. Returns, per stream, the primary
    keys that left the ground truth (children removed with their parent included), in the
    dump's order.
    """
    if not 0 <= share <= 1:
        raise ValueError("share must be within 0..1")
    data.deletions += 1
    rng = random.Random(f"fake-api-delete:{data.config.seed}:{seed}:{data.deletions}")
    before = _dump_keys(data)
    children_of = {
        parent: [s.name for s in STREAMS if s.parent == parent] for parent in PARENT_STREAMS
    }
    for sdef in STREAMS:
        if sdef.is_child:
            continue
        name = sdef.name
        records = data.top[name]
        chosen = set(rng.sample(range(len(records)), _count(share, len(records))))
        gone = [r for i, r in enumerate(records) if i in chosen]
        data.top[name] = [r for i, r in enumerate(records) if i not in chosen]
        data.removed[name].update(sort_key(name, r) for r in gone)
        for parent in gone if name in PARENT_STREAMS else ():
            data.deleted[name].discard(parent["id"])
            for child in children_of[name]:
                orphans = data.children[child].pop(parent["id"], [])
                data.removed[child].update(sort_key(child, r) for r in orphans)
    for sdef in STREAMS:
        if not sdef.is_child:
            continue
        assert sdef.parent is not None
        name = sdef.name
        pool = [
            (parent["id"], r)
            for parent in data.top[sdef.parent]
            if not data.is_deleted(sdef.parent, parent["id"])
            for r in data.children[name].get(parent["id"], [])
        ]
        gone_ids = {id(r) for _, r in rng.sample(pool, _count(share, len(pool)))}
        for parent_id in {pid for pid, r in pool if id(r) in gone_ids}:
            kept = []
            for r in data.children[name][parent_id]:
                if id(r) in gone_ids:
                    data.removed[name].add(sort_key(name, r))
                else:
                    kept.append(r)
            data.children[name][parent_id] = kept
    data.forget_index()
    after = _dump_keys(data)
    result = {}
    for name, keys in before.items():
        left = set(after[name])
        result[name] = [k for k in keys if k not in left]
    return result
