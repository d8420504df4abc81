"""Transformer workloads: model shapes and the attention sizes they imply.

Model parameters follow the FuseMax paper's evaluation (arXiv 2406.10491, Table III):
batch 64, and for each model the heads H, head dim E = F, model width D and FFN width S.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TransformerModel:
    """An encoder/decoder layer's shape."""

    name: str
    heads: int
    head_dim: int
    d_model: int
    d_ff: int
    batch: int = 64

    def attention_sizes(self, seq_len: int, kv_len: int | None = None) -> dict[str, int]:
        """Rank sizes of multi-head attention: B, H, P (queries), M (keys), E, F."""
        return {
            "B": self.batch,
            "H": self.heads,
            "P": seq_len,
            "M": seq_len if kv_len is None else kv_len,
            "E": self.head_dim,
            "F": self.head_dim,
        }


MODELS: dict[str, TransformerModel] = {
    m.name: m
    for m in (
        TransformerModel("BERT", heads=12, head_dim=64, d_model=768, d_ff=3072),
        TransformerModel("TrXL", heads=16, head_dim=64, d_model=1024, d_ff=4096),
        TransformerModel("T5", heads=8, head_dim=64, d_model=512, d_ff=2048),
        TransformerModel("XLM", heads=16, head_dim=128, d_model=2048, d_ff=8192),
    )
}

LENGTHS: dict[str, int] = {
    "1K": 2**10,
    "4K": 2**12,
    "16K": 2**14,
    "64K": 2**16,
    "256K": 2**18,
    "1M": 2**20,
}


def parse_length(text: str) -> int:
    """`4K` -> 4096, `1M` -> 1048576, `12288` -> 12288."""
    t = text.strip().upper()
    if t in LENGTHS:
        return LENGTHS[t]
    scale = {"K": 2**10, "M": 2**20}.get(t[-1:], 1)
    digits = t[:-1] if scale > 1 else t
    if not digits.isdigit() or int(digits) <= 0:
        raise ValueError(f"expected a length such as 4096, 4K or 1M, got {text!r}")
    return int(digits) * scale


def length_label(n: int) -> str:
    """4096 -> `4K`, 1048576 -> `1M`, others as plain numbers."""
    for label, value in LENGTHS.items():
        if value == n:
            return label
    return str(n)
