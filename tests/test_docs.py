"""The docs match the code: every config, doc and `l2l` command they name exists (a command at least
parses with --help), and the parameter counts they quote are what param_count.py prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from l2l.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH = re.compile(r"(?<![\w/.-])((?:configs|docs|benchmarks|scripts)/[\w./-]*\w)(?![\w*<{])")
CMD = re.compile(r"^\s*(?:\$\s*)?l2l ([a-z][\w-]*)(?: ([a-z][\w-]*))?")  # a command line in a code block
INLINE = re.compile(r"`l2l ([a-z][\w-]*)(?: ([a-z][\w-]*))?")  # `l2l train …` in prose


def _named_paths() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for m in PATH.finditer(doc.read_text()):
            p = m.group(1).rstrip(".")
            if any(c in p for c in "<>*{}") or p.endswith("/"):
                continue
            out.append((doc.name, p))
    return sorted(set(out))


@pytest.mark.parametrize("doc, path", _named_paths())
def test_named_files_exist(doc, path):
    full = ROOT / path
    assert full.exists() or (ROOT / "src" / "l2l" / path).exists(), f"{doc} names {path}, which does not exist"


def _subcommands() -> dict[str, set[str]]:
    ap = build_parser()
    sub = next(a for a in ap._actions if a.__class__.__name__ == "_SubParsersAction")
    out: dict[str, set[str]] = {}
    for name, p in sub.choices.items():
        inner = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
        out[name] = set(inner[0].choices) if inner else set()
    return out


def test_named_commands_exist():
    cmds = _subcommands()
    bad = []
    for doc in DOCS:
        fenced = False
        for line in doc.read_text().splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            for m in [*(CMD.finditer(line) if fenced else []), *INLINE.finditer(line)]:
                top, second = m.group(1), m.group(2)
                if top not in cmds:
                    bad.append(f"{doc.name}: l2l {top}")
                elif cmds[top] and second not in cmds[top]:
                    bad.append(f"{doc.name}: l2l {top} {second}")
    assert not bad, "docs name commands that do not exist:\n" + "\n".join(sorted(set(bad)))


def _parsers():
    """Every (sub)command parser, by its command words."""
    out = {}

    def walk(p, words):
        out[" ".join(words)] = p
        for a in p._actions:
            if a.__class__.__name__ == "_SubParsersAction":
                for name, sp in a.choices.items():
                    walk(sp, [*words, name])

    walk(build_parser(), [])
    return out


def test_help_explains_every_option():
    bad = []
    for words, p in _parsers().items():
        for a in p._actions:
            if a.option_strings and a.help is None:
                bad.append(f"l2l {words} {a.option_strings[0]}")
    assert not bad, "options without a help text:\n" + "\n".join(bad)


@pytest.mark.parametrize("argv", [["train"], ["eval"], ["predict"]])
def test_main_commands_show_examples(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*argv, "--help"])
    assert e.value.code == 0 and "example" in capsys.readouterr().out.lower()


@pytest.mark.slow
def test_model_md_parameter_counts_are_what_param_count_prints():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from param_count import count, paper_config

    from l2l.models.segmenter import Segmenter

    text = (ROOT / "docs" / "model.md").read_text()
    for label, sesm in (("baseline (`sesm.enabled: false`)", False), ("with SESM", True)):
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        got = count(Segmenter(paper_config(sesm)))
        want = [f"{got[k]:.3f} M" for k in ("visual", "text", "fusion", "decoder", "total")]
        assert cells[1:6] == want, f"docs/model.md row {label!r}: {cells[1:6]} but param_count.py gives {want}"


def test_architecture_module_map_names_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    src = ROOT / "src" / "l2l"
    missing = []
    for p in sorted(src.rglob("*.py")):
        rel = p.relative_to(src)
        if p.name == "__init__.py":
            continue
        if f"l2l/{rel}" not in text and f"`{p.name}`" not in text and f"{p.name}`" not in text:
            missing.append(f"l2l/{rel}")
    assert not missing, "docs/architecture.md's module map misses: " + ", ".join(missing)
