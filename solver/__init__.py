"""omniroute's routing solver (placeholder while building)."""

from solver.plan import InfeasiblePlan, NoFeasiblePlan, Plan, Score, Shipment, evaluate
from solver.problem import InvalidProblem, Line, Location, Objective, Options, Problem
from solver.pipeline import SolveParams, solve

__all__ = [
    "InfeasiblePlan",
    "InvalidProblem",
    "Line",
    "Location",
    "NoFeasiblePlan",
    "Objective",
    "Options",
    "Plan",
    "Problem",
    "Score",
    "Shipment",
    "SolveParams",
    "evaluate",
    "solve",
]
