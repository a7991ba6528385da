"""The stack's CloudFormation template (infra/template.yaml) as data."""

from pathlib import Path

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


class TemplateLoader(yaml.SafeLoader):
    """CloudFormation's short forms (!Ref, !GetAtt ...) as {"!Ref": value}."""


TemplateLoader.add_multi_constructor(
    "!", lambda loader, tag, node: {f"!{tag}": loader.construct_scalar(node)}
    if isinstance(node, yaml.ScalarNode) else {f"!{tag}": loader.construct_sequence(node)}
)  # fmt: skip


def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=TemplateLoader)
