"""The built-in trainer, run as a Job (`mlrollout train`) when a retraining trigger fires.

`pipeline.py` holds the scikit-learn pipelines and their search spaces as data, `search.py` the
Optuna study, `register.py` the MLflow run and the registered version with its lineage, `job.py`
the entrypoint and its report (termination message).
"""
