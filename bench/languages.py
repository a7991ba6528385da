"""German and English mail: the default model (the bundled English MiniLM, fine-tuned by
`python -m model train` with its defaults) on the generated samples (postwerk/samples.py,
half German, half English), accuracy and macro-F1 per language on the held-out samples.

Trained on the samples `make up` trains its first model on (--train-count of them), tested
on its held-out channel;
the Predictor (torch engine) classifies the held-out e-mails as serving does.

Reproduce:
    python -m bench.languages
"""

from collections import defaultdict

from bench.common import (
    LABEL,
    TEXT,
    Row,
    add_training_flags,
    base_parser,
    finish,
    predictor_pass,
    print_table,
    train_with_postwerk,
    training_hyperparameters,
    work_dir,
)
from bench.long_mail import scores
from model.console import quiet_libraries
from model.data import email_text
from postwerk import samples

NAME = "languages"


def rows(emails: list[samples.SampleEmail]) -> list[Row]:
    return [{TEXT: email_text(e.subject, e.body), LABEL: e.label} for e in emails]


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--train-count", type=int, default=samples.TRAINING["count"])
    add_training_flags(parser, epochs=5)
    args = parser.parse_args()
    quiet_libraries()
    train = samples.generate(count=args.train_count, seed=samples.TRAINING["seed"])
    held_out = samples.generate(**samples.HELD_OUT)
    texts = [email_text(e.subject, e.body) for e in held_out]  # as serving reads them
    channels = {"train": rows(train), "test": rows(held_out)}
    hyperparameters = training_hyperparameters(args)
    training = train_with_postwerk(
        work_dir(NAME, clean=True) / "ml", hyperparameters, channels, work_dir(NAME) / "train.log"
    )
    from model.serving.predictor import Predictor

    predictor = Predictor(training.model_dir, max_batch_size=32, engine="torch")
    served = predictor_pass(predictor, texts, 32)
    by_language: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for email, label in zip(held_out, served.labels, strict=True):
        by_language[email.language][0].append(label)
        by_language[email.language][1].append(email.label)
    results = {language: scores(*pair, predictor.labels) | {"emails": len(pair[0])}
               for language, pair in sorted(by_language.items())}  # fmt: skip
    print_table(
        "bundled MiniLM on the generated samples' held-out channel",
        ["language", "e-mails", "accuracy", "macro-F1"],
        [(language, r["emails"], r["accuracy"], r["macro_f1"]) for language, r in results.items()],
    )
    finish(NAME, {"model": "bundled all-MiniLM-L6-v2", "hyperparameters": hyperparameters,
                  "train": len(train), "by_language": results,
                  "overall": training.report["accuracy"]}, False, module=NAME)  # fmt: skip


if __name__ == "__main__":
    main()
