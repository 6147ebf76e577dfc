"""The policy that keeps the Jobs' ServiceAccount to status.monitoring: rendered, and complete.

RBAC cannot restrict fields, so the chart's ValidatingAdmissionPolicy compares every top-level
status field except monitoring; a status field added to the model without a comparison here would
be writable by the monitor's token.
"""

from __future__ import annotations

import re
from typing import Any

from charts.chart_support import by_kind, docs, render
from mlrollout.api.status import ModelDeploymentStatus


def _policy() -> dict[str, Any]:
    objs = docs(render())
    (policy,) = by_kind(objs, "ValidatingAdmissionPolicy")
    (binding,) = by_kind(objs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert isinstance(policy, dict)
    return policy


def test_policy_compares_every_status_field_but_monitoring() -> None:
    policy = _policy()
    spec = policy["spec"]
    assert isinstance(spec, dict)
    expression = spec["validations"][0]["expression"]
    compared = set(re.findall(r"\bobject\.\?status\.\?(\w+)", expression))
    fields = {f.alias or name for name, f in ModelDeploymentStatus.model_fields.items()}
    assert compared == fields - {"monitoring"}
    assert "mlrollout-job" in spec["matchConditions"][0]["expression"]
    assert spec["matchConstraints"]["resourceRules"][0]["resources"] == ["modeldeployments/status"]


def test_no_policy_without_rbac() -> None:
    assert not by_kind(docs(render("rbac.create=false")), "ValidatingAdmissionPolicy")
