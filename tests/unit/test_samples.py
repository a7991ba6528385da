"""The bundled sample e-mails: deterministic, varied, and read by the pipeline's parser
as what they claim to be."""

from collections import Counter

from postwerk import samples
from services.mail import parse_email
from tests.support.jobs import ROOT


def test_the_committed_samples_are_exactly_what_the_generator_makes(tmp_path):
    samples.write_emails(samples.generate(**samples.DEMO), tmp_path)
    committed = sorted((ROOT / "examples" / "emails").glob("*.eml"))
    assert [p.name for p in committed] == sorted(p.name for p in tmp_path.glob("*.eml"))
    for path in committed:
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name


def test_every_category_language_and_mime_shape_is_there():
    emails = samples.generate(**samples.DEMO)
    assert Counter((e.label, e.language) for e in emails) == {
        (label, language): 3 for label in samples.CATEGORIES for language in samples.LANGUAGES
    }
    assert {e.shape for e in emails} == set(samples.MIME_SHAPES)
    assert len({e.message_id for e in emails}) == len(emails)


def test_the_pipeline_parses_each_sample_as_written():
    for email in samples.generate(count=28, seed=5):
        parsed = parse_email(samples.to_eml(email), "raw", "incoming/x.eml")
        assert parsed.message_id == email.message_id.strip("<>")
        assert parsed.subject == email.subject
        assert parsed.language == email.language, email.body
        assert email.body.split("\n\n")[1][:30] in parsed.body_text
        assert bool(parsed.attachments) == (email.shape == "latin1_attachment")


def test_training_rows_carry_subject_body_and_label():
    emails = samples.generate(**samples.TRAINING)
    rows = samples.training_rows(emails)
    assert len(rows) == samples.TRAINING["count"]
    assert rows[0] == {
        "subject": emails[0].subject,
        "body": emails[0].body,
        "label": "service_feedback",
    }
    assert samples.generate(**samples.TRAINING) == emails, "same seed, same e-mails"
    assert samples.generate(count=10, seed=3) != samples.generate(count=10, seed=4)
