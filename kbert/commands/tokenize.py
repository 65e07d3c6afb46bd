"""`kbert tokenize`: show the WordPiece pieces, ids and byte offsets of texts.

    kbert tokenize --vocab runs/vocab "Embeddings are fun." "Another text"
    kbert tokenize --vocab runs/vocab --input texts.txt
    echo "from stdin" | kbert tokenize --vocab runs/vocab --json
"""

from __future__ import annotations

import argparse
import json

from kbert.textfiles import command_texts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab", required=True,
                        help="vocab.txt or a directory holding one")
    parser.add_argument("texts", nargs="*",
                        help="texts to tokenize; none: one text per line of standard input")
    parser.add_argument("--input", help="file with one text per line ('-' = standard input)")
    case = parser.add_mutually_exclusive_group()
    case.add_argument("--lower-case", dest="lower_case", action="store_true", default=None,
                      help="lower-case and strip accents (default: inferred from the vocabulary)")
    case.add_argument("--cased", dest="lower_case", action="store_false",
                      help="keep case and accents")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per text: text, pieces, ids, offsets "
                             "([start, end) UTF-8 byte offsets into the text)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def run(args: argparse.Namespace) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.tokenization.tokenizer import BertTokenizer  # noqa: PLC0415

    texts = command_texts(args.texts, args.input, default_input="-")
    tokenizer = BertTokenizer(args.vocab, lower_case=args.lower_case)
    ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
    pieces = tokenizer.id_to_piece(ids)
    for i, text in enumerate(texts):
        row_ids = ids[i].numpy().tolist()
        row_pieces = [p.decode("utf-8") for p in pieces[i].numpy()]
        offsets = list(zip(starts[i].numpy().tolist(), ends[i].numpy().tolist(), strict=True))
        if args.json:
            print(json.dumps({"text": text, "pieces": row_pieces, "ids": row_ids,
                              "offsets": [list(o) for o in offsets]}, ensure_ascii=False))
            continue
        raw = text.encode("utf-8")
        print(f"{text!r}: {len(row_ids)} pieces")
        for piece, token_id, (start, end) in zip(row_pieces, row_ids, offsets, strict=True):
            source = raw[start:end].decode("utf-8", "replace")
            print(f"  {piece:<20} {token_id:>7}  {start:>5}-{end:<5} {source!r}")
    return 0
