"""The table of what the local SageMaker service does with each request member
(emulation/sagemaker/validation.py FIELDS) is the one docs/emulation.md shows, and names
members AWS's model has; a weight-0 variant gets no traffic."""

import itertools

import botocore.session

from emulation.sagemaker.fleets import Fleet
from emulation.sagemaker.validation import DOC, FIELDS, documented, render


def test_the_page_shows_the_table_the_code_applies():
    assert documented(DOC.read_text()) == render(), (
        "docs/emulation.md is stale: python -m emulation.sagemaker.validation"
    )


def test_every_listed_member_is_one_aws_has():
    session = botocore.session.get_session()
    models = [session.get_service_model(n) for n in ("sagemaker", "sagemaker-runtime")]
    for path in FIELDS:
        operation, *members = path.split(".")
        (model,) = [m for m in models if operation in m.operation_names]
        shape = model.operation_model(operation).input_shape
        for member in members:
            while shape.type_name == "list":
                shape = shape.member
            assert member in shape.members, f"{path}: AWS has no {member}"
            shape = shape.members[member]


class Ready:
    ready = True


def test_a_variant_of_weight_zero_gets_no_traffic():
    heavy, light = Ready(), Ready()
    fleet = Fleet("config", [("zero", 0.0, [light]), ("one", 1.0, [heavy])])
    assert {id(fleet.pick(set())) for _ in itertools.repeat(None, 50)} == {id(heavy)}
    assert fleet.pick({id(heavy)}) is None, "no traffic for weight 0, even when alone"
