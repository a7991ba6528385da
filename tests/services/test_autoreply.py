"""Automatic replies: a template staff switched on answers confident results of its category
and language once, never an automated sender, never with a placeholder left."""

import email
import json
import re
from decimal import Decimal

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from hypothesis import event, given, settings
from hypothesis import strategies as st

from services import autoreply, clients, results, routing
from services.mail import NotAnEmail, parse_email
from services.replies import policy, sending
from services.replies.original import Original
from services.settings import RoutingTable
from tests.support.lambdas import LambdaContext, sqs_event
from tests.support.review import ARTIFACTS, RAW, TABLE, call

AUTOMATIC = "{salutation}\n\nthank you: we are looking into it and answer within a day."


@pytest.fixture
def automatic(desk):
    """An English complaint template that answers scores above 0.8 (m9 scores 0.9)."""
    status, template = call("POST", "/api/templates", {"category": "complaint", "language": "en",
                            "title": "We are on it", "body": AUTOMATIC, "author": "lena",
                            "auto_reply_above": 0.8})  # fmt: skip
    assert status == 201
    return template


def classified(message_id: str) -> str:
    """The routing event of a new result, as the autoreply queue receives it."""
    result = results.get(TABLE, message_id)
    detail = routing.detail(result, RoutingTable(), "classified")
    return json.dumps({"source": "postwerk", "detail-type": "email.classified", "detail": detail})


def answer(*message_ids: str) -> dict:
    return autoreply.handler(sqs_event(*map(classified, message_ids)), LambdaContext())


def sent_messages() -> list[email.message.Message]:
    s3 = boto3.client("s3")
    return [email.message_from_bytes(s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())
            for record, key in sending.outbox(ARTIFACTS) if record.status == "sent"]  # fmt: skip


def test_a_confident_result_is_answered_once_and_marked_automatic(automatic, desk):
    assert answer("m9") == {"batchItemFailures": []}
    assert answer("m9") == {"batchItemFailures": []}  # a redelivered event sends nothing
    [message] = sent_messages()
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["To"] == desk[3].sender and message["Subject"].startswith("Re: ")
    body = message.get_payload(decode=True).decode()
    assert body.startswith(f"Dear {desk[3].sender_name},") and "within a day" in body
    [(record, _)] = sending.outbox(ARTIFACTS)
    assert record.sender == autoreply.SENDER
    assert record.suggestion == f"template:{automatic['template_id']}@1"


def another_email_from_the_same_sender(message_id: str, header: bytes = b"") -> None:
    """m9's sender writes again: a new e-mail, a new result."""
    original = boto3.client("s3").get_object(Bucket=RAW, Key="incoming/9.eml")["Body"].read()
    again = header + original.replace(b"Message-ID: <", b"Message-ID: <again-", 1)
    boto3.client("s3").put_object(Bucket=RAW, Key=f"incoming/{message_id}.eml", Body=again)
    item = results.get(TABLE, "m9").model_copy(update={"message_id": message_id})
    item.input.source.key = f"incoming/{message_id}.eml"
    document = json.loads(item.model_dump_json(by_alias=True), parse_float=Decimal)
    boto3.resource("dynamodb").Table(TABLE).put_item(Item=document)


def test_one_automatic_reply_per_sender_within_the_period(automatic, monkeypatch):
    answer("m9")
    another_email_from_the_same_sender("m10")
    answer("m10")
    assert len(sent_messages()) == 1, "RFC 3834: once per sender within days"
    monkeypatch.setenv("POSTWERK_AUTO_REPLY_EVERY_DAYS", "0.00000001")  # the period is over
    answer("m10")
    assert len(sent_messages()) == 2


def test_a_reply_to_one_of_our_emails_gets_no_automatic_reply(automatic):
    another_email_from_the_same_sender("m10", b"In-Reply-To: <1234.5678@postwerk.example>\r\n")
    answer("m10")
    assert sent_messages() == []


def test_braces_in_the_senders_name_are_no_placeholder(automatic):
    original = boto3.client("s3").get_object(Bucket=RAW, Key="incoming/9.eml")["Body"].read()
    renamed = re.sub(rb"^From: [^\r\n]*<", b'From: "{amount} Jo" <', original, count=1, flags=re.M)
    boto3.client("s3").put_object(Bucket=RAW, Key="incoming/9.eml", Body=renamed)
    assert answer("m9") == {"batchItemFailures": []}
    [message] = sent_messages()
    assert message.get_payload(decode=True).decode().startswith("Dear amount Jo,")


class RefusingSes:
    def __init__(self, code: str):
        self.code = code

    def send_raw_email(self, **_):
        raise ClientError({"Error": {"Code": self.code, "Message": "to kim@x.example"}}, "Send")


def refused_by_ses(code: str, monkeypatch):
    """Every send refused with `code`; returns the real client factory."""
    client = clients.client
    monkeypatch.setattr(clients, "client", lambda name, **options: RefusingSes(code)
                        if name == "ses" else client(name, **options))  # fmt: skip
    return client


def assert_the_next_try_sends(client, monkeypatch, capsys) -> None:
    assert "kim@x.example" not in capsys.readouterr().out, "SES's message names the address"
    monkeypatch.setattr(clients, "client", client)
    answer("m9")
    assert len(sent_messages()) == 1, "the claim was released: the next try sends"


def test_ses_refusing_for_good_is_not_retried_and_the_claim_is_released(
    automatic, monkeypatch, capsys
):
    client = refused_by_ses("MessageRejected", monkeypatch)
    assert answer("m9") == {"batchItemFailures": []}
    assert_the_next_try_sends(client, monkeypatch, capsys)


def test_ses_throttling_is_retried_and_the_claim_is_released(automatic, monkeypatch, capsys):
    client = refused_by_ses("Throttling", monkeypatch)
    with pytest.raises(BatchProcessingError) as failed:  # the function fails: SQS retries
        answer("m9")
    assert "kim@x.example" not in str(failed.value)
    assert_the_next_try_sends(client, monkeypatch, capsys)


def test_below_the_threshold_in_another_language_or_switched_off_nothing_goes_out(
    automatic,
):
    answer("m0")  # a German complaint, scoring 0.41: the English template does not apply
    assert sent_messages() == []
    call("PUT", f"/api/templates/{automatic['template_id']}", {**automatic, "author": "lena",
         "auto_reply_above": None})  # fmt: skip
    answer("m9")
    assert sent_messages() == []


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Precedence: bulk",
        "List-Id: <customers.lists.example>",
        "X-Auto-Response-Suppress: All",
        "Return-Path: <>",
        "X-Autoreply: yes",
        "List-Unsubscribe: <mailto:leave@lists.example>",
        "X-Loop: support@lists.example",
        "Feedback-ID: 1:campaign:shop",
    ],
)
def test_an_automated_sender_gets_no_automatic_reply(automatic, header):
    original = boto3.client("s3").get_object(Bucket=RAW, Key="incoming/9.eml")["Body"].read()
    marked = header.encode() + b"\r\n" + original
    boto3.client("s3").put_object(Bucket=RAW, Key="incoming/9.eml", Body=marked)
    assert policy.automated(Original(marked))
    answer("m9")
    assert sent_messages() == []


@pytest.mark.parametrize(
    "sender",
    [
        "noreply@shop.example",
        "no-reply@x.example",
        "MAILER-DAEMON@mx.example",
        "bounces+123@lists.example",
        "do_not_reply@bank.example",
        "notifications@git.example",
        "autoresponder@helpdesk.example",
    ],
)
def test_system_addresses_look_automated(sender):
    raw = f"From: {sender}\r\nSubject: hi\r\n\r\nbody\r\n".encode()
    assert policy.automated(Original(raw))


def test_reports_and_our_own_address_look_automated():
    report = (b"From: Lena <lena@example.de>\r\nContent-Type: multipart/report; "
              b"report-type=delivery-status; boundary=x\r\n\r\n--x--\r\n")  # fmt: skip
    assert "report" in policy.automated(Original(report))
    own = b"From: Service <service@postwerk.example>\r\nSubject: hi\r\n\r\nbody\r\n"
    assert policy.automated(Original(own), "Service@postwerk.example") == "our own support address"
    assert policy.automated(Original(own), "other@postwerk.example") == ""


def test_staff_may_answer_a_newsletter_address_an_automatic_reply_may_not():
    raw = b"From: Shop <newsletter@shop.example>\r\nSubject: hi\r\n\r\nbody\r\n"
    assert policy.reply_address(Original(raw)) == "newsletter@shop.example"
    assert policy.automated(Original(raw))


def test_a_person_does_not_look_automated():
    raw = b"From: Lena Noreply <lena.noreply@example.de>\r\nSubject: hi\r\n\r\nbody\r\n"
    assert policy.automated(Original(raw)) == ""


def test_a_template_that_needs_what_the_email_lacks_is_not_sent_automatically(desk):
    body = "{salutation}\n\nyour customer number {customer_number} is noted."
    call("POST", "/api/templates", {"category": "complaint", "language": "en", "title": "n",
         "body": body, "author": "lena", "auto_reply_above": 0.5})  # fmt: skip
    answer("m9")
    assert sent_messages() == []


def one_line(max_size: int) -> st.SearchStrategy[str]:
    """A header value on one line: a CR or LF in it would end the field, or the header block
    (a blank line), and what follows would not be a header at all."""
    return st.text(st.characters(blacklist_characters="\r\n"), max_size=max_size)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "From",
                    "Reply-To",
                    "Return-Path",
                    "Precedence",
                    "Auto-Submitted",
                    "Content-Type",
                    "List-Id",
                    "Subject",
                    "X-Loop",
                ]
            ),
            st.one_of(
                one_line(max_size=60),
                st.emails(),
                st.builds("{} <{}>".format, one_line(max_size=20), st.emails()),
            ),
        ),
        max_size=6,
    ),
    st.binary(max_size=200),
)
def test_any_headers_give_a_reason_and_a_reply_or_a_refusal_never_an_error(fields, body):
    raw = b"".join(f"{name}: {value}".encode("utf-8", "surrogatepass") + b"\r\n"
                   for name, value in fields) + b"\r\n" + body  # fmt: skip
    original = Original(raw, RAW, "incoming/x.eml")
    reason = policy.automated(original, "support@postwerk.example")
    assert isinstance(reason, str)
    names = {name for name, _ in fields}
    assert reason or not names & {"List-Id", "X-Loop"}, "a list or loop header marks machine mail"
    try:
        address = policy.reply_address(original)
    except policy.NoReplyAddress:
        return
    try:
        parse_email(raw, RAW, "incoming/x.eml")
    except NotAnEmail:  # ingest rejects it: it never gets a result to answer
        return
    reply = sending.compose(original, "support@postwerk.example", address, "Danke.")
    event("a reply composed")
    assert reply["To"] == address and reply.as_bytes()
    assert original.facts["salutation"]
