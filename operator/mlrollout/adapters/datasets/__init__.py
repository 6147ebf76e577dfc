"""Datasets by URI through fsspec: local paths, s3:// (and any filesystem fsspec knows)."""
