"""Token classification and span extraction map labels and answers back to the right
characters, accented and multi-piece words included ("José" -> jose, "Zürich" -> zur ##ich)."""

import numpy as np
import pytest
from test_tasks_support import encoder, tokenizer, with_tokenizer

from kbert.tasks import (
    BertSpanExtractor,
    BertTokenClassifier,
    DataError,
    LabelMap,
    TruncationWarning,
)
from kbert.tasks.alignment import tokenize_with_char_offsets
from kbert.tasks.token_classifier import bio_entities
from kbert.tokenization.offsets import char_of_byte, utf8_bytes

TEXT = "José lives in São Paulo, near Zürich!"
WORDS = ["José", "lives", "in", "São", "Paulo,", "near", "Zürich!"]
TAGS = ["B-PER", "O", "O", "B-LOC", "I-LOC", "O", "B-LOC"]
LABELS = ["B-LOC", "B-PER", "I-LOC", "O"]


def _id(piece):
    return tokenizer().vocab.token_to_id[piece]


def test_char_of_byte_offsets():
    text = "aé€😀b"
    index = char_of_byte(text)
    for char, position in ((0, 0), (1, 1), (2, 3), (3, 6), (4, 10)):
        assert index[position] == char
    assert index[len(text.encode())] == len(text)


def test_char_of_byte_takes_lone_surrogates_as_the_tokenizer_does():
    # "\ud83d" (half an emoji) has no UTF-8 form; the tokenizer reads it as 3 invalid bytes
    text = "caf\ud83d bank \udfff!"
    index = char_of_byte(text)
    assert len(index) == len(utf8_bytes(text)) + 1 and index[-1] == len(text)
    assert index[3:6].tolist() == [3, 3, 3] and index[6] == 4
    pieces = tokenize_with_char_offsets(tokenizer(), [text])[0]
    assert "".join(text[p.start:p.end] for p in pieces) == "cafbank!"  # the surrogates dropped
    assert [p.start for p in pieces][-5:] == [5, 6, 7, 8, 11]


def test_pieces_carry_character_spans_of_the_original_text():
    pieces = tokenize_with_char_offsets(tokenizer(), [TEXT])[0]
    assert [TEXT[p.start:p.end] for p in pieces] == [
        "José", "lives", "in", "São", "Paulo", ",", "near", "Zür", "ich", "!"]
    assert [p.continuation for p in pieces].count(True) == 1


def test_first_piece_labelling_of_words():
    model = with_tokenizer(BertTokenClassifier(encoder(), num_labels=4), max_length=16)
    model.set_label_map(LabelMap(LABELS))
    features, targets, weights, alignment = model.encode_words([WORDS], [TAGS])
    ids = features["token_ids"][0]
    # [CLS] jose lives in sao paulo , near zur ##ich ! [SEP]
    assert ids[8] == _id("zur") and ids[9] == _id("##ich")
    assert alignment[0] == [1, 2, 3, 4, 5, 7, 8]  # "Paulo," starts at paulo; "Zürich!" at zur
    labelled = np.flatnonzero(weights[0])
    assert labelled.tolist() == [1, 2, 3, 4, 5, 7, 8]  # not ",", "##ich", "!", specials, pads
    assert [LABELS[t] for t in targets[0][labelled]] == TAGS


def _oracle(model, tag_of_piece):
    """Make the model predict, at each position, the tag `tag_of_piece` gives its token id."""
    def tag_ids(features, batch_size):
        ids = features["token_ids"]
        return np.vectorize(lambda i: LABELS.index(tag_of_piece.get(int(i), "O")))(ids)
    model._tag_ids = tag_ids


def test_predictions_map_back_to_words_and_character_spans():
    model = with_tokenizer(BertTokenClassifier(encoder(), num_labels=4), max_length=32)
    model.set_label_map(LabelMap(LABELS))
    _oracle(model, {_id("jose"): "B-PER", _id("sao"): "B-LOC", _id("paulo"): "I-LOC",
                    _id("zur"): "B-LOC", _id("##ich"): "O"})
    assert model.predict_words([WORDS]) == [TAGS]
    result = model.predict_text([TEXT])[0]
    assert [w["text"] for w in result["words"]] == [
        "José", "lives", "in", "São", "Paulo", ",", "near", "Zürich", "!"]
    for word in result["words"]:
        assert TEXT[word["start"]:word["end"]] == word["text"]
    assert result["entities"] == [
        {"label": "PER", "start": 0, "end": 4, "text": "José"},
        {"label": "LOC", "start": TEXT.index("São"), "end": TEXT.index(","), "text": "São Paulo"},
        {"label": "LOC", "start": TEXT.index("Zürich"), "end": TEXT.index("!"), "text": "Zürich"},
    ]


def test_bio_merging_rules():
    spans = [(0, 1), (2, 3), (4, 5), (6, 7)]
    text = "a b c d"
    assert bio_entities(["I-X", "I-X", "B-X", "O"], spans, text) == [
        {"label": "X", "start": 0, "end": 3, "text": "a b"},
        {"label": "X", "start": 4, "end": 5, "text": "c"}]
    assert bio_entities(["B-X", "I-Y", None, "O"], spans, text)[1]["label"] == "Y"


def test_truncated_words_get_no_label_and_a_warning():
    model = with_tokenizer(BertTokenClassifier(encoder(), num_labels=4), max_length=6)
    model.set_label_map(LabelMap(LABELS))
    with pytest.warns(TruncationWarning, match="1 of 1 sentences.*3 words get no label"):
        _, _, weights, alignment = model.encode_words([WORDS], [TAGS])
    assert alignment[0][4:] == [-1, -1, -1] and weights[0].sum() == 4


def test_token_data_errors():
    model = with_tokenizer(BertTokenClassifier(encoder(), num_labels=4))
    with pytest.raises(DataError, match="2 words but 1 tags"):
        model.encode_words([["a", "b"]], [["O"]])
    with pytest.raises(DataError, match="no words"):
        model.encode_words([[]])


@pytest.mark.slow
def test_token_classifier_learns_and_tags_accented_entities():
    sentences = [["José", "lives", "in", "Zürich"], ["his", "cat", "lives", "near", "São", "Paulo"],
                 ["José", "opened", "the", "umbrella"], ["the", "big", "city", "is", "Zürich"]]
    tags = [["B-PER", "O", "O", "B-LOC"], ["O", "O", "O", "O", "B-LOC", "I-LOC"],
            ["B-PER", "O", "O", "O"], ["O", "O", "O", "O", "B-LOC"]]
    model = with_tokenizer(BertTokenClassifier(encoder(), num_labels=4, dropout=0.0),
                           max_length=16)
    model.fit_words(sentences * 4, tags * 4, epochs=30, batch_size=8, learning_rate=1e-2,
                    verbose=0)
    assert model.predict_words(sentences) == tags
    text = "José  lives in   Zürich"  # extra spaces: spans must follow the raw string
    entities = model.predict_text([text])[0]["entities"]
    assert entities == [{"label": "PER", "start": 0, "end": 4, "text": "José"},
                        {"label": "LOC", "start": 17, "end": 23, "text": "Zürich"}]
    assert text[17:23] == "Zürich"


# ------------------------------------------------------------------ span extraction
CONTEXT = ("the film is good and the story is fun . his cat lives in São Paulo . "
           "José lives near Zürich with his cat .")
QUESTION = "where does José live ?"


def test_long_context_is_windowed_with_doc_stride():
    model = with_tokenizer(BertSpanExtractor(encoder()), max_length=16)
    answer = (CONTEXT.index("Zürich"), "Zürich")
    features, targets, windows = model.encode_examples([QUESTION], [CONTEXT], [answer],
                                                       doc_stride=4)
    assert tokenizer().pieces([QUESTION])[0] == ["where", "does", "jose", "live", "?"]
    room = 16 - 5 - 3  # [CLS] question [SEP] context [SEP]
    n_context = len(tokenize_with_char_offsets(tokenizer(), [CONTEXT])[0])
    assert len(windows) == 1 + -(-(n_context - room) // 4)
    for w, window in enumerate(windows):
        inside = window.char_starts >= 0
        assert inside.sum() == min(room, n_context - 4 * w)
        s, e = targets["start_logits"][w], targets["end_logits"][w]
        if s:  # the answer is inside this window: its pieces cover exactly "Zürich"
            assert CONTEXT[window.char_starts[s]:window.char_ends[e]] == "Zürich"
            assert features["token_ids"][w][s] == _id("zur")
    covered = [w for w in range(len(windows)) if targets["start_logits"][w]]
    assert covered and covered[0] > 0  # not in the first window: the windowing matters


def test_best_span_respects_order_and_max_length():
    start = np.array([0, 5, -1, 0, 1, 0])
    end = np.array([0, 0, 0, 9, 4, 0])
    valid = np.array([False, True, True, True, True, True])
    assert BertSpanExtractor.best_span(start, end, valid, 30)[1:] == (1, 3)  # 5 + 9
    assert BertSpanExtractor.best_span(start, end, valid, 2)[1:] == (3, 3)  # (1, 3) too long
    assert BertSpanExtractor.best_span(end, start, valid, 30)[1:] == (3, 4)  # end >= start
    valid[3] = False
    assert BertSpanExtractor.best_span(start, end, valid, 30)[1:] == (1, 4)
    assert BertSpanExtractor.best_span(start, end, np.zeros(6, bool), 3) is None


def test_answers_map_back_to_context_characters_across_windows():
    model = with_tokenizer(BertSpanExtractor(encoder()), max_length=16)
    zur, ich = _id("zur"), _id("##ich")

    def oracle_predict(features, batch_size=None, verbose=None):
        ids = features["token_ids"]
        start = np.where(ids == zur, 5.0, 0.0)
        end = np.where(ids == ich, 5.0, 0.0)
        return {"start_logits": start, "end_logits": end}

    model.predict = oracle_predict
    contexts = [CONTEXT, "José lives in São Paulo with his cat ."]
    answers = model.predict_answers([QUESTION, QUESTION], contexts, doc_stride=4)
    assert answers[0]["text"] == "Zürich"
    assert CONTEXT[answers[0]["start"]:answers[0]["end"]] == "Zürich"
    assert answers[1]["score"] < answers[0]["score"]  # no zur##ich in context 2


def test_answer_must_be_at_its_offset():
    model = with_tokenizer(BertSpanExtractor(encoder()), max_length=32)
    with pytest.raises(DataError, match="not at character 3"):
        model.encode_examples([QUESTION], [CONTEXT], [(3, "Zürich")])
