"""Plain numpy references for the zoo's linear and recurrent attention, from the papers.

Independent of the cascades' Einsums: the causal forms are token loops over the state
recurrence (S_t = Decay_t * S_(t-1) + k_t v_t^T, o_t = q_t S_t), or the dense masked form
where a paper states one. Layouts follow the cascades (Q[..., E, P], K[..., E, M],
V[..., F, M] -> AV[..., F, P]); causal masks are bottom-right aligned: query p sits at key
position q = p + M - P and reads the state after key q, or outputs 0 when q < 0.
`LINEAR_CHECKS` maps each built-in name to its (input layout, output, compute).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.library.zoo_linear import GLA_TAU

Array = npt.NDArray[np.float64]
Compute = Callable[[Mapping[str, Array], Mapping[str, int]], Array]
Layout = tuple[tuple[str, tuple[str, ...]], ...]


def elu_plus_one(x: Array) -> Array:
    """Katharopoulos et al.'s feature map phi(x) = elu(x) + 1."""
    out: Array = np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))
    return out


def sigmoid(x: Array) -> Array:
    """The logistic function."""
    out: Array = 1.0 / (1.0 + np.exp(-x))
    return out


def _query_positions(n_q: int, n_k: int) -> npt.NDArray[np.int64]:
    """Key position q = p + M - P of each query (bottom-right aligned)."""
    return np.arange(n_q) + n_k - n_q


def scan_states(k: Array, v: Array, decay: Array | None = None) -> Array:
    """States S_t[e,f] after each key t, by the token recurrence, shape (..., M, E, F).

    S_t = decay_t * S_(t-1) + k_t v_t^T with `decay` (..., E, M) broadcast over f (None: 1).
    """
    *batch, n_e, n_k = k.shape
    state = np.zeros((*batch, n_e, v.shape[-2]))
    states = np.zeros((*batch, n_k, n_e, v.shape[-2]))
    for t in range(n_k):
        if decay is not None:
            state = decay[..., t][..., None] * state
        state = state + k[..., :, t, None] * v[..., None, :, t]
        states[..., t, :, :] = state
    return states


def read_states(q: Array, states: Array) -> Array:
    """o[f,p] = sum_e q[e,p] S_(q(p))[e,f]; 0 for a query before the first key."""
    n_q, n_k = q.shape[-1], states.shape[-3]
    out = np.zeros((*q.shape[:-2], states.shape[-1], n_q))
    for p, t in enumerate(_query_positions(n_q, n_k)):
        if t >= 0:
            out[..., :, p] = np.einsum("...e,...ef->...f", q[..., :, p], states[..., t, :, :])
    return out


def linear_attention(q: Array, k: Array, v: Array) -> Array:
    """Non-causal normalized linear attention (Katharopoulos Eq. 4-6), phi = elu + 1."""
    fq, fk = elu_plus_one(q), elu_plus_one(k)
    kv = np.einsum("...em,...fm->...ef", fk, v)
    num = np.einsum("...ep,...ef->...fp", fq, kv)
    den = np.einsum("...ep,...e->...p", fq, fk.sum(axis=-1))
    out: Array = num / den[..., None, :]
    return out


def causal_linear_attention(q: Array, k: Array, v: Array) -> Array:
    """Causal normalized linear attention as an RNN (Katharopoulos Eq. 16-20), token loop."""
    fq, fk = elu_plus_one(q), elu_plus_one(k)
    num = read_states(fq, scan_states(fk, v))
    ones = np.ones((*v.shape[:-2], 1, v.shape[-1]))
    den = read_states(fq, scan_states(fk, ones))
    out: Array = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return out


def lightning_decay(dl: Array) -> Array:
    """Per-head decay lambda_h in (0, 1) from the input DL (sigmoid)."""
    return sigmoid(dl)


def lightning_dense(q: Array, k: Array, v: Array, lam: Array) -> Array:
    """Lightning attention's quadratic form ((Q^T K) * D) V, D[p,m] = lambda^(q-m) (m <= q).

    `lam` holds one decay per head, axis 1 of q (B, H, E, P).
    """
    n_q, n_k = q.shape[-1], k.shape[-1]
    dist = _query_positions(n_q, n_k)[:, None] - np.arange(n_k)[None, :]
    visible = dist >= 0
    decay = np.where(visible, lam[:, None, None] ** np.where(visible, dist, 0), 0.0)
    scores = np.einsum("bhep,bhem->bhpm", q, k) * decay[None]
    out: Array = np.einsum("bhpm,bhfm->bhfp", scores, v)
    return out


def lightning_gradients(q: Array, k: Array, v: Array, lam: Array, do: Array) -> dict[str, Array]:
    """DQ, DK, DV of sum(O * DO) for `lightning_dense`'s O (the decay's gradient left out).

    With W = (Q^T K) * D and O = W V: dV = W^T dO, dS = (dO^T V) * D, dQ = dS K, dK = dS^T Q.
    """
    n_q, n_k = q.shape[-1], k.shape[-1]
    dist = _query_positions(n_q, n_k)[:, None] - np.arange(n_k)[None, :]
    visible = dist >= 0
    decay = np.where(visible, lam[:, None, None] ** np.where(visible, dist, 0), 0.0)[None]
    weights = np.einsum("bhep,bhem->bhpm", q, k) * decay
    d_s = np.einsum("bhfp,bhfm->bhpm", do, v) * decay
    return {
        "DQ": np.einsum("bhpm,bhem->bhep", d_s, k),
        "DK": np.einsum("bhpm,bhep->bhem", d_s, q),
        "DV": np.einsum("bhpm,bhfp->bhfm", weights, do),
    }


def lightning_recurrent(q: Array, k: Array, v: Array, lam: Array) -> Array:
    """Lightning attention's token recurrence: s = lambda s + k v^T, o = q s."""
    decay = np.broadcast_to(lam[None, :, None, None], (*k.shape[:2], k.shape[2], k.shape[3]))
    return read_states(q, scan_states(k, v, decay))


def gla_gates(gl: Array) -> Array:
    """GLA's per-feature decay alpha = sigmoid(GL)^(1/tau), tau = 16."""
    return sigmoid(gl) ** (1.0 / GLA_TAU)


def gla_recurrent(q: Array, k: Array, v: Array, alpha: Array) -> Array:
    """GLA's token recurrence S_t = diag(alpha_t) S_(t-1) + k_t v_t^T, o_t = q_t S_t."""
    return read_states(q, scan_states(k, v, alpha))


def lightnet(q: Array, k: Array, v: Array, w: Array) -> Array:
    """LightNet, non-causal: S = sum_m (w_m / U) k_m v_m^T with U = sum_m w_m; o = q S."""
    u = w.sum(axis=-1)
    state = np.einsum("...em,...em,...fm->...ef", w / u[..., None], k, v)
    out: Array = np.einsum("...ep,...ef->...fp", q, state)
    return out


def lightnet_recurrent(q: Array, k: Array, v: Array, w: Array) -> Array:
    """LightNet's additive recurrence, token by token (variants.md Sec. 2.7 #8).

    U_t = U_(t-1) + w_t and S_t = (U_(t-1) / U_t) S_(t-1) + ((w_t / U_t) k_t) v_t^T; with every
    query at the last position this is the non-causal (global U) form.
    """
    *batch, n_e, n_k = k.shape
    u = np.zeros((*batch, n_e))
    state = np.zeros((*batch, n_e, v.shape[-2]))
    for t in range(n_k):
        new_u = u + w[..., t]
        state = (u / new_u)[..., None] * state
        state = state + ((w[..., t] / new_u) * k[..., t])[..., None] * v[..., None, :, t]
        u = new_u
    out: Array = np.einsum("...ep,...ef->...fp", q, state)
    return out


def _qkv(inputs: Mapping[str, Array]) -> tuple[Array, Array, Array]:
    return tuple(np.asarray(inputs[n], dtype=np.float64) for n in ("Q", "K", "V"))  # type: ignore[return-value]


def _plain(attend: Callable[[Array, Array, Array], Array]) -> Compute:
    def compute(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
        return attend(*_qkv(inputs))

    return compute


def _lightning(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return lightning_dense(*_qkv(inputs), lightning_decay(np.asarray(inputs["DL"])))


def _lightning_bwd(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    lam = lightning_decay(np.asarray(inputs["DL"]))
    grads = lightning_gradients(*_qkv(inputs), lam, np.asarray(inputs["DO"], dtype=np.float64))
    return grads["DK"]


def _gla(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return gla_recurrent(*_qkv(inputs), gla_gates(np.asarray(inputs["GL"])))


def _lightnet(inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return lightnet(*_qkv(inputs), np.exp(np.asarray(inputs["WL"])))


_MH: Layout = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("V", ("B", "H", "F", "M")),
)
_CAUSAL = (_MH, "AV", _plain(causal_linear_attention))

LINEAR_CHECKS: dict[str, tuple[Layout, str, Compute]] = {
    "attention-linear": (_MH, "AV", _plain(linear_attention)),
    "attention-linear-causal-quadratic": _CAUSAL,
    "attention-linear-causal-recurrent": _CAUSAL,
    "attention-linear-causal-chunked": _CAUSAL,
    "attention-lightning-2": ((*_MH, ("DL", ("H",))), "AV", _lightning),
    "attention-gla": ((*_MH, ("GL", ("B", "H", "E", "M"))), "AV", _gla),
    "attention-lightnet": ((*_MH, ("WL", ("B", "H", "E", "M"))), "AV", _lightnet),
    # the backward (zoo): DK compared, as the training built-ins' checks do
    "attention-lightning-2-bwd": (
        (*_MH, ("DL", ("H",)), ("DO", ("B", "H", "F", "P"))),
        "DK",
        _lightning_bwd,
    ),
}
