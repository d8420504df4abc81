"""The score function as the GPU kernels pay for it (`ScoreCost`), and its modelled work."""

from __future__ import annotations

from dataclasses import dataclass

from attnsim.mappers.gpu.model import StepWork

# The modelled work of the score functions and modifiers, per score element (the unit model;
# the plain 1-pass kernel's are measured where calibrated, `calibrated_modes`):
SIGMOID_OPS = 1.5  # sigmoid(x) = 0.5 tanh(x / 2) + 0.5: one FMA, convert P (tanh: the SFU)
SIGMOID_ROW_OPS = 2.0  # the unfused sigmoid kernel: FMA, convert (tanh: the SFU)
SOFTCAP_SFU = 1.0  # cap * tanh(x / cap): tanh on the special-function unit
SOFTCAP_OPS = 2.0  # ... and its two multiplies
BIAS_OPS = 1.0  # a position bias (ALiBi: slope * (p - m)) added by one FMA

# The calibrated score-sigmoid step is the kernel's with its tanh argument in one FMA
# (618e5e5): the H200 microbenchmark of 2026-12-06. What sigmoid results then say is how the
# H200's own score suites of that day came out (recomputed by test_score_measured.py).
SIGMOID_PRICED = (
    "sigmoid: the 1-pass kernel's step is priced as its softmax step plus the score-sigmoid "
    "less the score-softmax step measured on the kernel with the one-FMA tanh argument "
    "(H200, 2026-12-06); on the H200 score suites of that day "
    "(kernels/measurements/masks/masks-score-h200-2026-12-06.csv) sigmoid calls were priced "
    "-3% to +8% of their measured time (mean +3%; the same run's softmax calls +1%)"
)

# the ping-pong kernel's sigmoid (kernels.gluon.attn_pingpong, SIGMOID)
SIGMOID_PINGPONG_PRICED = (
    "sigmoid on the ping-pong kernel: its step is priced as the kernel's measured softmax step "
    "plus the pingpong-score-sigmoid less the pingpong-score-softmax step "
    "(kernels.calibrate.microbench_masks --pingpong-only); the power cap's slowdown is read "
    "from its tensor FLOP/s times the calibration's sigmoid_weight (1 where it has none). On "
    "an H100 score suite "
    "(kernels/measurements/h100/masks-score-h100-2026-12-06-pingpong.csv, the H200 "
    "calibration transferred) its calls were priced -6% to +12% of their measured time (mean "
    "+3%; the same run's ping-pong softmax calls -6% to +6%)"
)
SIGMOID_PINGPONG_UNMEASURED = (
    "sigmoid on the ping-pong kernel: no pingpong-score-* steps in the calibration; its step "
    "is the kernel's softmax step less the row max, sum and rescale at the calibrated SFU "
    "and fp32 rates, no slower than that softmax step (sigmoid only removes work) and no "
    "faster than its matmuls"
)


@dataclass(frozen=True, slots=True)
class ScoreCost:
    """The score function as the GPU kernels pay for it (softmax with no modifier: plain).

    Attributes:
        sigmoid: Sigmoid weights: no running max, row sum or rescale (1-pass; tanh form).
        softcap: tanh soft-capping of every score (SFU) with its two multiplies.
        position_bias: An additive position bias (ALiBi), one FMA per score.
        param_bytes: HBM bytes of per-head score parameters (ALiBi's slopes), read once by
            each kernel that applies the score function.
    """

    sigmoid: bool = False
    softcap: bool = False
    position_bias: bool = False
    param_bytes: float = 0.0

    @property
    def is_plain(self) -> bool:
        """Whether this is the kernels' own softmax (nothing added)."""
        return not (self.sigmoid or self.softcap or self.position_bias)

    def describe(self) -> str:
        """E.g. `sigmoid, softcap`."""
        parts = [("sigmoid", self.sigmoid), ("softcap", self.softcap)]
        parts.append(("position bias", self.position_bias))
        return ", ".join(n for n, on in parts if on) or "softmax"

    @property
    def calibrated_modes(self) -> tuple[str, ...]:
        """The plain 1-pass kernel's score functions as calibration modes `score-<name>`.

        A position bias is the kernel's ALiBi (the only one it runs).
        """
        named = (("sigmoid", self.sigmoid), ("softcap", self.softcap))
        return tuple(n for n, on in (*named, ("alibi", self.position_bias)) if on)

    def modifier_work(self, elements: float) -> StepWork:
        """SFU and fp32 work the modifiers add to `elements` scores."""
        sfu = SOFTCAP_SFU * self.softcap
        ops = SOFTCAP_OPS * self.softcap + BIAS_OPS * self.position_bias
        return StepWork((), sfu * elements, ops * elements)


SOFTMAX = ScoreCost()
