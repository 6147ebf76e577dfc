from charts.fixtures import crd, schema_dir  # noqa: F401 - fixtures
