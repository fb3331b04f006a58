"""What the tests and the benchmarks share, so neither imports the other: a throwaway PostgreSQL
server, trainers that sleep or fail on purpose, tiny specs and slices of the real data, worker
processes on a study, and trials made by hand.

Not part of the service: nothing under hpo/, trainers/ or storage/ imports it.
"""
