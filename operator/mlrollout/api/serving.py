"""What to serve and where it comes from: the model reference, the registry, the serving pods."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from mlrollout.api.base import ApiModel, Quantity, Rule, exactly_one, list_map

PythonTypeName = Annotated[str, StringConstraints(max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]


class ModelRef(ApiModel):
    """A registered model: its name and either an exact version or an alias pinned on deploy."""

    name: str = Field(min_length=1, max_length=256, pattern=r"^[^/\s]([^/]*[^/\s])?$")
    version: str | None = Field(default=None, pattern=r"^[1-9][0-9]*$", max_length=20)
    alias: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=255)

    cel_rules = (
        Rule(
            "has(self.version) != has(self.alias)",
            "exactly one of version or alias must be set",
            lambda m: exactly_one(m.version, m.alias),
        ),
    )


class Registry(ApiModel):
    tracking_uri: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=2048)
    champion_alias: str = Field(default="champion", pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=255)
    credentials_secret: str | None = Field(
        default=None, max_length=253, description="A Secret whose keys become env of serving and job pods."
    )


class Resources(ApiModel):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class Batching(ApiModel):
    max_batch_size: int = Field(default=32, ge=1, le=4096)
    max_delay_ms: float = Field(default=2.0, ge=0.0, le=10000.0)


class EnvVar(ApiModel):
    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)
    value: str = Field(default="", max_length=32768)


_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class SecretKey(ApiModel):
    name: str = Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)
    key: str = Field(default="token", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class Feedback(ApiModel):
    token_secret: SecretKey | None = Field(
        default=None,
        description="A Secret key holding a shared token: POST /feedback then needs "
        "`Authorization: Bearer <token>` (401 otherwise). Unset: anyone who reaches the Service may "
        "send feedback (outcome names and values are validated either way).",
    )


class Serving(ApiModel):
    image: str = Field(min_length=1, max_length=1024, pattern=r"^\S+$")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    replicas: int = Field(default=1, ge=0, le=1000)
    port: int = Field(default=8080, ge=1, le=65535)
    resources: Resources | None = None
    batching: Batching | None = None
    env: list[EnvVar] = Field(default_factory=list, max_length=64, json_schema_extra=list_map("name"))
    service_account_name: str | None = Field(default=None, max_length=253)
    node_selector: dict[str, str] | None = None
    trusted_types: list[PythonTypeName] = Field(
        default_factory=list,
        max_length=64,
        description="skops types the runtime may load beyond its safe defaults, e.g. "
        "sklearn.tree._tree.Tree for tree ensembles; the model is refused otherwise (never unpickled).",
    )
    feedback: Feedback | None = None
    allow_code: bool = Field(
        default=False,
        description="Serve (and gate) MLflow pyfunc models, e.g. models-from-code: loading one imports "
        "its loader module and runs code shipped with the artifact. Off by default: only scikit-learn "
        "models saved with skops (types trusted) are loaded, anything else is refused at start-up. "
        "Pickled artifacts stay refused either way.",
    )

    cel_rules = (
        Rule(
            "!has(self.env) || self.env.all(e, self.env.exists_one(f, f.name == e.name))",
            "env names must be unique",
            lambda s: len({e.name for e in s.env}) == len(s.env),
            field_path=".env",
        ),
    )
