"""Render template.yaml for given parameters, as CloudFormation would plan it.

Evaluates ``Conditions`` (``Equals``/``Not``/``And``/``Or``/``Condition``), drops resources
and outputs whose condition is false, and resolves ``If``, ``Ref`` to a parameter or
pseudo parameter and ``AWS::NoValue`` everywhere else. References to resources stay as
``{"Ref": id}`` / ``{"GetAtt": ...}`` so tests can see what points where.
"""

from __future__ import annotations

from typing import Any

import yaml

from tests.aws.conftest import SCHEMA_DIR, _CfnLoader

_NO_VALUE = object()


def load_template() -> dict[str, Any]:
    """template.yaml with short-form tags as ``{tag: value}``."""
    return yaml.load((SCHEMA_DIR / "template.yaml").read_text(), Loader=_CfnLoader)  # type: ignore[no-any-return]


def render(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The template's resources and outputs for ``parameters`` (defaults filled in)."""
    template = load_template()
    values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    unknown = set(parameters or {}) - set(values)
    assert not unknown, f"not template parameters: {unknown}"
    values.update(parameters or {})
    values.update({"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"})
    conditions: dict[str, bool] = {}

    def condition(name: str) -> bool:
        if name not in conditions:
            conditions[name] = bool(resolve(template["Conditions"][name]))
        return conditions[name]

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (resolve(i) for i in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((tag, arg),) = node.items()
            if tag == "Ref":
                if arg == "AWS::NoValue":
                    return _NO_VALUE
                return values.get(arg, node)
            if tag == "If":
                return resolve(arg[1] if condition(arg[0]) else arg[2])
            if tag == "Condition":
                return condition(arg)
            if tag == "Equals":
                left, right = (resolve(a) for a in arg)
                return left == right
            if tag == "Not":
                return not resolve(arg[0])
            if tag == "And":
                return all(resolve(a) for a in arg)
            if tag == "Or":
                return any(resolve(a) for a in arg)
        return {k: v for k, v in ((k, resolve(v)) for k, v in node.items()) if v is not _NO_VALUE}

    resources = {
        name: resolve(resource)
        for name, resource in template["Resources"].items()
        if "Condition" not in resource or condition(resource["Condition"])
    }
    outputs = {
        name: resolve(output["Value"])
        for name, output in template["Outputs"].items()
        if "Condition" not in output or condition(output["Condition"])
    }
    return {"Resources": resources, "Outputs": outputs, "Conditions": conditions}


def of_type(rendered: dict[str, Any], kind: str) -> dict[str, Any]:
    """The rendered resources of one type, by logical id."""
    return {n: r for n, r in rendered["Resources"].items() if r["Type"] == kind}
