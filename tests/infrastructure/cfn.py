"""Reading template.yaml in tests: a YAML loader for CloudFormation's short tags, and a small evaluator
of the intrinsics the template uses, to see what a function's environment becomes for given parameters.

The evaluator knows only what template.yaml needs (Ref, GetAtt, Sub, If, Equals, Not, Join, Split); anything
else raises, so a new intrinsic in the template fails loudly here instead of being silently skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

__all__ = ["TEMPLATE", "Resolver", "load_template"]


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus `!Ref`, `!GetAtt`, `!Sub`, … turned into their long JSON forms."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    assert isinstance(document, dict)
    return document


_NO_VALUE = object()
_PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "lb",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::Partition": "aws",
}
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Evaluates intrinsics for one set of parameter values. Resources resolve to placeholders named
    after them (`Ref` of a queue gives a URL, of a secret an ARN, …)."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self.template = template
        self.parameters: dict[str, Any] = {}
        for name, spec in template["Parameters"].items():
            raw = parameters.get(name, spec.get("Default"))
            assert raw is not None, f"parameter {name} has no default: give it a value"
            raw = str(raw)
            self.parameters[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
        self.parameters.update(_PSEUDO)
        self.conditions = {
            name: bool(self.value(expr)) for name, expr in template.get("Conditions", {}).items()
        }

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        kind = self.template["Resources"][name]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.us-east-1.amazonaws.com/123456789012/lb-{name}"
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:lb-{name}-AbCdEf"
        return f"lb-{name}"

    def value(self, expr: Any) -> Any:
        if isinstance(expr, list):
            return [v for v in (self.value(e) for e in expr) if v is not _NO_VALUE]
        if not isinstance(expr, dict):
            return expr
        if len(expr) == 1 and next(iter(expr)).startswith(("Fn::", "Ref")):
            ((function, arg),) = expr.items()
            assert function in self._functions, f"teach tests/infrastructure/cfn.py {function}"
            return self._functions[function](self, arg)
        resolved = {k: self.value(v) for k, v in expr.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _get_att(self, arg: list[str]) -> str:
        resource, attribute = arg
        return "6379" if attribute == "Endpoint.Port" else f"lb-{resource}.{attribute}"

    def _if(self, arg: list[Any]) -> Any:
        condition, when_true, when_false = arg
        return self.value(when_true if self.conditions[condition] else when_false)

    def _equals(self, arg: list[Any]) -> bool:
        left, right = (self.value(a) for a in arg)
        return str(left) == str(right)

    def _join(self, arg: list[Any]) -> str:
        delimiter, items = arg
        return str(delimiter).join(str(i) for i in self.value(items))

    def _sub(self, arg: str | list[Any]) -> str:
        pattern = arg if isinstance(arg, str) else arg[0]
        local = {} if isinstance(arg, str) else {k: self.value(v) for k, v in arg[1].items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                return self._get_att(name.split(".", 1))
            return str(self._ref(name))

        return _SUB.sub(substitute, pattern)

    _functions: ClassVar[dict[str, Callable[[Resolver, Any], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::If": _if,
        "Fn::Equals": _equals,
        "Fn::Not": lambda self, arg: not self.value(arg[0]),
        "Fn::Join": _join,
        "Fn::Split": lambda self, arg: str(self.value(arg[1])).split(str(arg[0])),
        "Fn::Sub": _sub,
    }

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """What Lambda puts in a function's environment: Globals merged with the function's own."""
        merged: dict[str, Any] = {}
        merged.update(self.template["Globals"]["Function"]["Environment"]["Variables"])
        merged.update(self.template["Resources"][logical_id]["Properties"]["Environment"]["Variables"])
        resolved = self.value(merged)
        return {name: str(value) for name, value in resolved.items()}
