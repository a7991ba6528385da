"""How a model is served: one variant of instances, a serverless one, or the shape an
endpoint has now (what promote keeps), and `deploy --target aws --serverless`."""

from postwerk import deploy_commands, sagemaker
from postwerk.settings import CliSettings
from services.lifecycle import Serving


def test_instances_serverless_and_a_copied_shape():
    on_instances = Serving("image", "role", "ml.m5.large", 2)
    assert on_instances.production_variants("m") == [
        {"VariantName": "primary", "ModelName": "m", "InitialVariantWeight": 1.0,
         "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}
    ]  # fmt: skip
    serverless = Serving("image", "role", serverless={"MemorySizeInMB": 2048, "MaxConcurrency": 5})
    [variant] = serverless.production_variants("m")
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert serverless.describe() == "primary: serverless 2048 MB, 5 at once"

    ab = Serving("image", "role", variants=(
        {"VariantName": "a", "InitialVariantWeight": 3.0, "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1},
        {"VariantName": "b", "InitialVariantWeight": 1.0, "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 2},
    ))  # fmt: skip
    variants = ab.production_variants("new")
    assert [(v["VariantName"], v["ModelName"], v["InitialVariantWeight"]) for v in variants] == [
        ("a", "new", 3.0), ("b", "new", 1.0)
    ]  # fmt: skip
    assert ab.describe() == "a: 1 x ml.m5.large, b: 2 x ml.m5.large"


def test_deploy_to_aws_passes_serverless_through(monkeypatch, tmp_path):
    served = []
    monkeypatch.setattr(deploy_commands.stack, "upload_model", lambda model, bucket: "s3://m")
    monkeypatch.setattr(deploy_commands.lifecycle, "serve",
                        lambda endpoint, url, serving, name: served.append(serving))  # fmt: skip
    monkeypatch.setattr(deploy_commands.lifecycle, "wait_for_endpoint",
                        lambda endpoint: {"EndpointStatus": "InService"})  # fmt: skip
    monkeypatch.setattr(deploy_commands, "rebuild_index_for_new_model", lambda *a: None)
    config = sagemaker.serverless_config(3072, 7)
    deploy_commands.serve_on_aws(CliSettings(), {"SageMakerRoleArn": "arn:role"}, "bucket",
                                 "ecr/image", tmp_path / "model.tar.gz", 1, config)  # fmt: skip
    [serving] = served
    assert serving.serverless == {"MemorySizeInMB": 3072, "MaxConcurrency": 7}
    assert serving.image == "ecr/image" and serving.role_arn == "arn:role"
