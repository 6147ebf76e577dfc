"""Benchmarks that run our components side by side with their peers, in one run, on this machine."""
