"""Multi-device (sequence-parallel) mappers: Ring Attention, Ulysses, LASP-2 and LASP-2H.

`collectives` prices collectives over a GPU's interconnect (`archs.interconnect`) with
alpha-beta costs; `blocks` prices each device's share on the single-GPU models.
"""
