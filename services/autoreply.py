"""autoreply: the optional automatic replies, from the routing bus through an SQS queue.

A rule on the routing bus sends each new result that needs no review (reason
"classified") to the autoreply queue. For each, a live template of the e-mail's category and
language whose `auto_reply_above` the score exceeds is filled from the e-mail and sent
through the same path as a staff reply (services/replies/sending.py: once per e-mail and draft,
audited with sender "auto-reply", threaded, stored with its pair). Off by default: a template
answers automatically only when staff set its threshold.

At most one automatic reply per sender within `auto_reply_every_days` (7; RFC 3834 asks
for one per several days), claimed in `replies/auto/` before it is sent. Never sent: to an
e-mail that looks automated (RFC 3834's Auto-Submitted, Precedence bulk or list,
mailing-list and auto-responder headers, a bounce or read report, no-reply and system
addresses, our own support address, a reply to one of our e-mails), so two auto-responders
never loop; a reply still holding a placeholder the e-mail did not fill; an e-mail without
a usable reply address. Each skip is logged with its reason (the message id, never the
address). The reply itself carries `Auto-Submitted: auto-replied`.
"""

import json
from datetime import timedelta

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError

from services import placeholders
from services.records import ClassificationV1
from services.replies import policy, sending, templates
from services.replies.original import Original
from services.replies.templates import ReplyTemplate
from services.settings import FunctionSettings

SENDER = "auto-reply"  # the audit's `sender` of an automatic reply
DRAFT = "auto-reply"  # its draft id: one automatic reply per e-mail, whichever template
PERMANENT = ("MessageRejected", "MailFromDomainNotVerified")  # trying again won't help

logger = Logger(service="autoreply")


class NotSent(Exception):
    """SES did not take the reply this time; the message is the error code."""


processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    settings = FunctionSettings()
    found = templates.newest_versions(settings.artifacts_bucket)
    live = [template for template in found if template.auto_reply_above]
    return process_partial_response(
        event, lambda record: answer(settings, live, record), processor, context
    )


def answer(settings: FunctionSettings, live: list[ReplyTemplate], record: SQSRecord) -> None:
    """Send the automatic reply this result gets from the `live` templates, if any; raises
    only to be retried."""
    result = ClassificationV1.model_validate(json.loads(record.body)["detail"])
    template = templates.automatic_template(live, result)
    if template is None or result.input is None:
        return
    original = Original.read(result.input.source)
    reason = policy.automated(original, settings.support_address)
    if reason:
        logger.info("no auto-reply", message_id=result.message_id, reason=reason)
        return
    text, missing = placeholders.fill(template.body, original.facts)
    if missing:
        logger.info("no auto-reply", message_id=result.message_id,
                    reason=f"the e-mail does not give {', '.join(missing)}")  # fmt: skip
        return
    address = policy.reply_address(original)  # automated() checked that there is one
    every = timedelta(days=settings.auto_reply_every_days)
    if not policy.claim_automatic_reply(settings.artifacts_bucket, address, every):
        logger.info("no auto-reply", message_id=result.message_id,
                    reason=f"the sender had one within {every.days} days")  # fmt: skip
        return
    request = sending.SendRequest(draft_id=DRAFT, text=text, sender=SENDER,
                                  suggestion=template.source, suggested_text=text)  # fmt: skip
    try:
        _, sent = sending.send(sending.Desk.of(settings), original, result.label, request,
                               automatic=True)  # fmt: skip
    except (policy.NoReplyAddress, sending.UnfinishedReply) as error:
        policy.release_automatic_reply(settings.artifacts_bucket, address)
        logger.info("no auto-reply", message_id=result.message_id, reason=str(error))
        return
    except ClientError as error:  # SES: its message may name the address, so only the code
        policy.release_automatic_reply(settings.artifacts_bucket, address)
        code = error.response["Error"]["Code"]
        if code in PERMANENT:
            logger.warning("no auto-reply", message_id=result.message_id, reason=code)
            return
        raise NotSent(f"SES: {code}") from None  # retried by SQS
    logger.info("auto-reply", message_id=result.message_id, sent_now=sent,
                template=template.template_id)  # fmt: skip
