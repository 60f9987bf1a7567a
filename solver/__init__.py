"""omniroute's order-routing solver: which locations ship which units of one order.

A pure library (no gRPC, no protobuf, no `server`), shaped like PyVRP: validated problem data,
a free `solve()`, a result dataclass, and an independent `evaluate()`.

Problem
    `Problem(lines, locations, atf, destination, options)` - frozen, validated on construction
    (`InvalidProblem(ValueError)` with `.reason` UPPER_SNAKE, `.field`, `.value`).
    `Problem.build(lines=[("sku", qty)], locations=[Location | dict], atf={(sku, loc): units},
    destination=(lat, lon) | postal_code=("US", "33101"), **option_fields)` takes plain values.
    `Line(sku, quantity)`, `Location(id, latitude, longitude, shipment_cost=0, priority=0)`
    (lower priority values win ties), `Options(objective=Objective.LEXICOGRAPHIC | COST,
    cost_per_km, max_shipments, allow_partial, keep_lines_whole, excluded_locations,
    alternatives, time_limit)`.
Solving
    `solve(problem, params: SolveParams | None = None) -> Plan`; raises `NoFeasiblePlan`
    (`.reason` INSUFFICIENT_STOCK with `.shortfall` {sku: units}, or MAX_SHIPMENTS_EXCEEDED)
    when no plan exists without allow_partial. Thread-safe: it keeps no shared state, and the
    OR-Tools solves release the GIL. Deterministic: the same problem gives the same plan.
Plan
    `Plan(shipments: tuple[Shipment(location_id, units {sku: n}, distance_km)], unrouted
    {sku: n}, objective: Score, proven_optimal, gap, method, candidates, solve_seconds,
    alternatives: tuple[Plan])`, with `shipment_count`, `total_distance_km`, `location_ids`.
    `Score(unrouted_units, cost, shipments, distance_m)` compares as a tuple, smaller is
    better: (unrouted, shipments, distance) under the lexicographic objective (cost is 0),
    (unrouted, cost in milli-units, shipments, distance) under the cost objective. Ties are
    broken by the locations' (priority, location id) ranks.
    `evaluate(problem, plan) -> Score` recomputes the score from the plan alone; raises
    `InfeasiblePlan` (`.reason`) if the plan breaks a rule of the problem.
Also
    `solver.geo` (haversine `distance_km`/`distances_km`, offline `postal_code_centroid`),
    `solver.baselines` (`greedy`, `enumeration`: what the peers do, returning `Plan`s).
Waves (many orders over shared stock and location capacity)
    `solver.wave_problem.WaveProblem` (`WaveOrder`, `Capacity`), `solver.wave.solve(problem,
    time_limit) -> WavePlan` (each order's `Plan` or None, the batch `Score`, a lower bound,
    proven_optimal, gap), `solver.wave_plan.evaluate(problem, plans)`, and the order-by-order
    baselines `solver.wave_baselines.one_by_one` / `greedy_one_by_one`; the model is in
    `solver.wave_model`'s docstring.

How it solves (`solver.solve`, the strategies in `solver.strategies`, the model in
`solver.model`): the allocation variables are projected out (a set of locations can ship the
order iff each line's capped ATF over the set covers it), sets of one to three locations are
found by an exhaustive pruned search with no solver call, four to six by the same search under
a work budget, and the rest by lexicographic MIP stages solved to gap 0.
"""

from solver.plan import InfeasiblePlan, NoFeasiblePlan, Plan, Shipment, evaluate
from solver.problem import InvalidProblem, Line, Location, Objective, Options, Problem
from solver.scoring import Score
from solver.solve import solve
from solver.state import SolveParams

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
