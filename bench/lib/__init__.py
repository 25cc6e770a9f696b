"""What the benchmarks share: data generators, starting processes and stacks, and reporting.

Scripts in ``bench/`` import from here (``from lib.report import format_table``), never from
each other nor from the test suites. Modules by job: `processes` (server processes, CPU),
`backends` (PostgreSQL, profile-service, the SMTP sink), `report` (tables, machine summary),
`customers`, `orders`, `events` and `synthetic_fit` (generated data), `py_spy` and
`sql_timing` (where the time goes), and one module per benchmark for its larger parts
(`sweep_*`, `delivery_*`, `pipeline_*`, `scoring_*`, `lifecycle_progress`, `view_events`, `wrk`).
"""
