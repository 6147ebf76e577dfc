"""The validation gate, run as a Job (`mlrollout gate`) before a candidate may touch live traffic.

Checks are pure functions over a holdout and the model's predictions (`checks/`); `job.py` does the
I/O: model and champion from MLflow, the holdout through fsspec, the serving app for latency, the
report back as a termination message, an MLflow artifact and tags on the model version.
"""
