"""Design-space exploration.

Experiment files, sweeps, the runner, the result store, feasibility and Pareto fronts.
"""
