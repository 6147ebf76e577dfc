"""Drift monitoring, run as a CronJob's Job (`mlrollout monitor`).

`stats/` holds the pure statistics (two-sample tests, effect sizes, the verdict); `job.py` does the
I/O: reference and inference log through fsspec, the verdict into status.monitoring, the report.
"""
