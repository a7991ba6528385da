"""Receiving mail on AWS: the template's SES receipt rule writes to where an upload lands
(the raw bucket's incoming/), SES may write only there and only for this account, and
`postwerk deploy --target aws` activates the rule set and names the MX record."""

import boto3
from botocore.stub import Stubber

from postwerk import deploy
from tests.support.template import template


def test_the_receipt_rule_writes_to_incoming_and_only_ses_of_this_account_may():
    resources = template()["Resources"]
    rule = resources["MailReceiptRule"]
    assert rule["Condition"] == "ReceivesMail"
    [action] = rule["Properties"]["Rule"]["Actions"]
    assert action["S3Action"] == {
        "BucketName": {"!Ref": "RawBucket"},
        "ObjectKeyPrefix": "incoming/",
    }
    [statement] = resources["RawBucketSesPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert statement["Resource"] == {"!Sub": "${RawBucket.Arn}/incoming/*"}
    assert statement["Condition"]["StringEquals"] == {
        "aws:SourceAccount": {"!Ref": "AWS::AccountId"}
    }


def test_deploy_activates_the_rule_set_and_names_the_mx_record(monkeypatch):
    ses = boto3.client(
        "ses", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    monkeypatch.setattr(deploy.clients, "client", lambda name: ses)
    with Stubber(ses) as stubbed:
        stubbed.add_response(
            "set_active_receipt_rule_set", {}, {"RuleSetName": "postwerk-receiving"}
        )
        mx = deploy.activate_mail_receiving({"MailRuleSet": "postwerk-receiving"})
        stubbed.assert_no_pending_responses()
    assert mx == "10 inbound-smtp.eu-west-1.amazonaws.com"
    assert deploy.activate_mail_receiving({"RawBucket": "raw"}) is None  # no receiving
