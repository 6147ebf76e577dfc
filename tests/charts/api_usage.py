"""Which Kubernetes rights the operator's own code uses, read from its source (ast), not from a list.

Every call of the kubernetes client in the operator process (handlers, reconcile, adapters) is
turned into (apiGroup, resource) -> verbs: typed calls by their method name
(`delete_namespaced_job` -> batch jobs delete), custom-object calls by their group and plural
arguments (literals, `names.*` constants, or a module-level table they are unpacked from). A
server-side apply (a patch in a function that uses APPLY) may create the object, so it needs
create too. A call the scan cannot resolve is an error: the least-privilege test must never pass
by missing one.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlrollout.api import names

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "mlrollout"
# The operator process: Job packages (gate, monitor, train) and the runtime run under other accounts,
# the kubectl plugin (cli) with the user's.
OPERATOR_PACKAGES = ("handlers", "reconcile", "adapters", "rollout", "api")

Rights = dict[tuple[str, str], set[str]]

VERBS = {
    "read": "get",
    "get": "get",
    "list": "list",
    "create": "create",
    "patch": "patch",
    "replace": "update",
    "delete": "delete",
    "delete_collection": "deletecollection",
}
# Typed client methods name the kind; its group and resource.
KINDS = {
    "service": ("", "services"),
    "config_map": ("", "configmaps"),
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "event": ("", "events"),
    "secret": ("", "secrets"),
    "job": ("batch", "jobs"),
    "cron_job": ("batch", "cronjobs"),
    "deployment": ("apps", "deployments"),
    "deployment_scale": ("apps", "deployments/scale"),
    "horizontal_pod_autoscaler": ("autoscaling", "horizontalpodautoscalers"),
}
CALL = re.compile(
    r"^(?P<verb>read|get|list|create|patch|replace|delete_collection|delete)_namespaced_(?P<kind>[a-z_]+?)"
    r"(?P<status>_status)?$"
)


class Unresolved(AssertionError):
    pass


def operator_rights() -> Rights:
    files = [p for pkg in OPERATOR_PACKAGES for p in sorted((PACKAGE / pkg).rglob("*.py"))]
    rights: Rights = {}
    for path in files:
        merge(rights, scan_source(path.read_text(), str(path.relative_to(ROOT))))
    return rights


def merge(into: Rights, more: Rights) -> Rights:
    for key, verbs in more.items():
        into.setdefault(key, set()).update(verbs)
    return into


def scan_source(source: str, where: str = "<source>") -> Rights:
    tree = ast.parse(source)
    tables = _module_tables(tree)
    rights: Rights = {}
    for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
        applies = "APPLY" in ast.unparse(func) or "apply-patch" in ast.unparse(func)
        for call in _calls(func):
            m = CALL.match(call.func.attr)  # type: ignore[attr-defined]
            if m is None:
                continue
            verb = VERBS[m.group("verb")]
            verbs = {verb, "create"} if verb == "patch" and applies and not m.group("status") else {verb}
            suffix = "/status" if m.group("status") else ""
            for group, resource in _targets(call, m.group("kind"), func, tables, f"{where}:{call.lineno}"):
                rights.setdefault((group, resource + suffix), set()).update(verbs)
    return rights


def _calls(func: ast.AST) -> Iterable[ast.Call]:
    called = {id(n.func) for n in ast.walk(func) if isinstance(n, ast.Call)}
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node
        elif isinstance(node, ast.Attribute) and id(node) not in called and CALL.match(node.attr):
            # A client method taken as a value and called later: its target cannot be read here.
            raise Unresolved(f"line {node.lineno}: {node.attr} is referenced, not called: call it directly")


def _targets(
    call: ast.Call, kind: str, func: ast.AST, tables: dict[str, Any], where: str
) -> list[tuple[str, str]]:
    if kind != "custom_object":
        if kind not in KINDS:
            raise Unresolved(f"{where}: unknown kind {kind!r} in {call.func.attr}: add it to KINDS")  # type: ignore[attr-defined]
        return [KINDS[kind]]
    args = {i: a for i, a in enumerate(call.args)}
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    group_expr, plural_expr = kw.get("group", args.get(0)), kw.get("plural", args.get(3))
    if group_expr is None or plural_expr is None:
        raise Unresolved(f"{where}: custom-object call without group/plural arguments")
    groups = _values(group_expr, func, tables, where)
    plurals = _values(plural_expr, func, tables, where)
    if len(groups) == 1 or len(plurals) == 1:
        return [(g, p) for g in groups for p in plurals]
    # Both unpacked from one table row: keep rows together (apps deployments, not apps events).
    return sorted(set(zip(groups, plurals, strict=True)))


def _values(expr: ast.expr, func: ast.AST, tables: dict[str, Any], where: str) -> list[str]:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "names":
        return [str(getattr(names, expr.attr))]
    if isinstance(expr, ast.Name):
        for node in ast.walk(func):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == expr.id:
                    return _values(node.value, func, tables, where)
                if (
                    isinstance(target, ast.Tuple)
                    and expr.id in [e.id for e in target.elts if isinstance(e, ast.Name)]
                    and isinstance(node.value, ast.Subscript)
                    and isinstance(node.value.value, ast.Name)
                    and node.value.value.id in tables
                ):
                    index = [e.id for e in target.elts if isinstance(e, ast.Name)].index(expr.id)
                    return [str(row[index]) for row in tables[node.value.value.id].values()]
        if expr.id in tables and isinstance(tables[expr.id], str):
            return [tables[expr.id]]
    raise Unresolved(
        f"{where}: cannot tell which resource {ast.unparse(expr)!r} names; use a literal or names.*"
    )


def _module_tables(tree: ast.Module) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(node, ast.AnnAssign):
            target = node.target
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(target, ast.Name) and value is not None:
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return out
