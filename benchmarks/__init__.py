"""Benchmarks run by `make bench` (`python -m benchmarks`): each module here with a `main(argv)`."""
