import pytest

from model.contract import InputError
from model.data import Example, check_labels, email_text, load_channel, split_validation


def test_email_text_joins_subject_and_body():
    assert email_text("  Invoice ", "wrong amount\n") == "Invoice\nwrong amount"
    assert email_text("", "only body") == "only body"


def test_jsonl_and_csv_files_in_one_channel(tmp_path):
    channel = tmp_path / "train"
    (channel / "part").mkdir(parents=True)
    (channel / "a.jsonl").write_text(
        '{"text": "hello", "label": "x"}\n\n{"subject": "S", "body": "B", "label": 2}\n'
    )
    (channel / "part" / "b.csv").write_text('text,label\n"a, quoted",y\n')
    (channel / ".hidden").write_text("ignored")
    examples = load_channel(channel, None, "text", "label")
    assert examples == [Example("hello", "x"), Example("S\nB", "2"), Example("a, quoted", "y")]


def test_content_type_overrides_the_suffix(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "data.txt").write_text("text,category\nhi,greeting\n")
    examples = load_channel(tmp_path / "train", "text/csv; charset=utf-8", "text", "category")
    assert examples == [Example("hi", "greeting")]


@pytest.mark.parametrize(
    ("name", "content", "content_type", "message"),
    [
        ("a.txt", "text,label\n", None, "cannot tell the format of a.txt"),
        ("a.csv", "text,label\n", "application/parquet", "unsupported ContentType"),
        ("a.jsonl", "[1, 2]\n", None, "a.jsonl line 1: expected a JSON object"),
        ("a.jsonl", '{"text": "x", "label": "y"}\n{oops\n', None, "a.jsonl line 2: not valid"),
        ("a.csv", "body,label\n", None, "has no records"),
        ("a.csv", "text,label\nhello,\n", None, "a.csv line 2: no 'label' value"),
        ("a.jsonl", '{"text": 5, "label": "y"}\n', None, "'text' must be a string"),
    ],
)
def test_bad_files_raise_a_clear_error(tmp_path, name, content, content_type, message):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / name).write_text(content)
    with pytest.raises(InputError, match=message):
        load_channel(tmp_path / "train", content_type, "text", "label")


def test_split_is_stratified_and_complete():
    examples = [Example(f"a{i}", "a") for i in range(50)] + [
        Example(f"b{i}", "b") for i in range(10)
    ]
    train, validation = split_validation(examples, 0.2, seed=1)
    assert sorted(train + validation, key=lambda e: e.text) == sorted(
        examples, key=lambda e: e.text
    )
    assert [e.label for e in validation].count("a") == 10
    assert [e.label for e in validation].count("b") == 2
    assert split_validation(examples, 0.2, seed=1) == (train, validation), "deterministic"


def test_labels_of_other_channels_must_be_known():
    train = [Example("x", "a"), Example("y", "b")]
    assert check_labels(train, {}) == ["a", "b"]
    with pytest.raises(InputError, match="channel 'test' has labels not in train: \\['c'\\]"):
        check_labels(train, {"test": [Example("z", "c")]})


def word_tokenizer():
    """A BERT tokenizer whose words are w0 ... w99 (one token each)."""
    from transformers import BertTokenizer

    words = [f"w{i}" for i in range(100)]
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocabulary)})


def test_head_keeps_the_start_and_head_tail_both_ends_of_a_long_text():
    from model.data import tokenize

    tokenizer = word_tokenizer()
    long_text, short_text = " ".join(f"w{i}" for i in range(40)), "w1 w2 w3"

    def read(long_text_mode: str) -> list[list[str]]:
        encoded = tokenize(tokenizer, [long_text, short_text], 10, long_text_mode)
        assert [len(mask) for mask in encoded["attention_mask"]] == [10, 5]
        return [tokenizer.convert_ids_to_tokens(ids) for ids in encoded["input_ids"]]

    head, head_tail = read("head"), read("head_tail")
    assert head[0] == ["[CLS]", *(f"w{i}" for i in range(8)), "[SEP]"]
    assert head_tail[0] == ["[CLS]", "w0", "w1", "w2", "w3", "w36", "w37", "w38", "w39", "[SEP]"]
    assert head[1] == head_tail[1] == ["[CLS]", "w1", "w2", "w3", "[SEP]"], "short: whole"
