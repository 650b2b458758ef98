"""The registry is the one list of blocks: no code outside ``yolo_attn/modules/`` names a block, and names are safe.

The rule (README, "Your own block"): adding a block is one file in ``yolo_attn/modules/`` plus its test file. So
``git grep -w`` for every registered block name and alias finds nothing outside the block files, the generated
configs (``cfg/``), the generated README sections, the block tests (``tests/test_<block>.py``, ``tests/test_fast.py``,
``tests/test_modules.py``) and the short allow-list below of user-facing names the mission fixes.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import ultralytics.nn.modules as ult_modules
import ultralytics.nn.tasks as tasks
from conftest import KIT_BLOCKS, ROOT

from yolo_attn import BLOCKS
from yolo_attn.modules import AttentionGate

ORIGINAL = ("NAM", "SimAM", "SE", "DAS")  # the mission's four blocks: their names are part of the documented product

# (path pattern, names, line pattern, why): a hit is allowed only if all three match. Keep this list short.
ALLOWED = [
    (r"README\.md", ORIGINAL, r".", "the README documents the mission's four blocks (new ones: generated sections)"),
    (r"pyproject\.toml", ORIGINAL, r"^description = ", "the package description names the mission's four blocks"),
    (r".*", ("NAM",), r"(?i)penalty", "the nam_penalty option and its docs (NAM's L1 sparsity penalty)"),
    (r"yolo_attn/__init__\.py", ("NAM",), r"yolo_attn\.NAM", "the public API yolo_attn.NAM"),
    (r"yolo_attn/training/.*|tests/test_penalty\.py", ("NAM",), r".", "NAM's sparsity penalty: its code docs and tests"),
    (r"docs/.*\.md", ORIGINAL, r".", "prose pages document the mission's four blocks, like the README"),
    (r"tests/test_community_rows\.py", ORIGINAL + ("SEAttention", "NAMAttention", "DASAttention"), r".",
     "the community-row spec: the rows users write, by name"),
]
# the original four blocks' own tests live in test_modules.py (formulas) and test_fast.py (inference fast paths)
EXEMPT_FILES = [r"yolo_attn/modules/.*", r"cfg/.*", r"tests/test_modules\.py", r"tests/test_fast\.py",
                r"tests/test_registry\.py"]
README_SECTIONS = re.compile(r"<!-- generated: .*?-->.*?<!-- end of generated .*?-->", re.S)


def block_words() -> dict[str, str]:
    """Return {word: registered name} for every kit block name and alias."""
    words = {name: name for name, _ in KIT_BLOCKS}
    words.update({a: n for a, n in BLOCKS.aliases().items() if n in words})
    return words


def generated_readme_lines() -> set[int]:
    """Return the 1-based README line numbers inside generated sections."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = set()
    for m in README_SECTIONS.finditer(text):
        first = text.count("\n", 0, m.start()) + 1
        lines |= set(range(first, first + m.group(0).count("\n") + 1))
    return lines


def offenders() -> list[str]:
    """Return ``path:line: word: text`` for every mention of a block outside the places the rule allows."""
    words = block_words()
    cmd = ["git", "grep", "-n", "-w", "-I", "--untracked", *[x for w in words for x in ("-e", w)], "--", "."]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False).stdout
    stems = {cls.__module__.rpartition(".")[2] for _, cls in KIT_BLOCKS}  # yolo_attn/modules/<stem>.py
    exempt = [*EXEMPT_FILES, *[rf"tests/test_{re.escape(s)}\.py" for s in stems]]
    readme_generated = generated_readme_lines()
    found = []
    for hit in out.splitlines():
        path, line, text = hit.split(":", 2)
        if any(re.fullmatch(p, path) for p in exempt) or path == "README.md" and int(line) in readme_generated:
            continue
        for word in sorted({w for w in words if re.search(rf"(?<![\w]){re.escape(w)}(?![\w])", text)}):
            if not any(
                re.fullmatch(p, path) and word in names and re.search(pattern, text) for p, names, pattern, _ in ALLOWED
            ):
                found.append(f"{path}:{line}: {word}: {text.strip()[:120]}")
    return found


def test_no_code_outside_the_block_files_names_a_block():
    """Adding a block is one file: nothing else in the tree refers to a particular block (see ALLOWED)."""
    found = offenders()
    assert not found, f"{len(found)} mentions of particular blocks outside yolo_attn/modules/:\n" + "\n".join(found)


def test_names_and_aliases_do_not_shadow_ultralytics():
    """No registered name or alias is one of Ultralytics' own module names (e.g. its CBAM stays usable)."""
    theirs = {n for n in vars(ult_modules) if not n.startswith("_")}
    theirs |= {n for n, v in vars(tasks).items() if not n.startswith("_") and not hasattr(v, "block")}
    taken = [w for w in block_words() if w in theirs and getattr(tasks, w, None) is not BLOCKS.get(w)]
    assert not taken, taken
    assert ult_modules.CBAM.__module__.startswith("ultralytics")  # Ultralytics' CBAM is still its own


def test_every_block_follows_the_contract():
    """Each kit block is an AttentionGate that declares what the rest of the kit reads, and its file names it."""
    for name, cls in KIT_BLOCKS:
        assert issubclass(cls, AttentionGate) and cls.paper and cls.formula and cls.params, name
        assert all(a.describe() for a in cls.args) and cls.signature().startswith("["), name
        assert len(cls.config_args) <= len(cls.args), name


def test_registration_errors_are_clear():
    """A taken name, a taken alias, a non-module class and a non-identifier name are refused with the reason."""
    cls = BLOCKS.get(KIT_BLOCKS[0][0])
    other = type("Other", (AttentionGate,), {})
    with pytest.raises(KeyError, match="already registered"):
        BLOCKS.register(other, KIT_BLOCKS[0][0])
    alias = next(iter(BLOCKS.aliases()))
    with pytest.raises(KeyError, match=f"alias '{alias}'.*already taken"):
        BLOCKS.register(other, "OtherBlock", aliases=(alias,))
    with pytest.raises(TypeError, match="not an nn.Module subclass"):
        BLOCKS.register(int, "Int")
    with pytest.raises(ValueError, match="Python identifier"):
        BLOCKS.register(other, "my-block")
    assert BLOCKS.get(KIT_BLOCKS[0][0]) is cls and "OtherBlock" not in BLOCKS
