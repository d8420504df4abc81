"""Stub: replaced by the implementation."""
class OpCounts: ...
def count_ops(*a, **k):  # type: ignore[no-untyped-def]
    raise NotImplementedError
