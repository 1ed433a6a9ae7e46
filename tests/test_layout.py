"""The package's shape, which every module keeps: one concern per module, each importing only concerns
below it (config at the bottom, the CLI at the top), units short enough to hold in one's head, and an
`import catdog` that does nothing but define names (no cgroup read, no TensorFlow)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "catdog"
# Lowest first. A module may import from a lower layer only; a package (cli, wall) counts as one concern,
# its own modules importing each other freely.
LAYERS = [
    {"catdog"},
    {"config"},
    {"threads", "images", "download", "metrics", "notebooks", "identity", "acls"},
    {"registry", "broker", "kafka"},
    {"labels", "models", "progress"},
    {"sources"},
    {"data"},
    {"predict", "monitoring"},
    {"plots", "exercises", "challenge", "labwatch"},
    {"training", "service"},
    {"transfer", "checkset"},
    {"experiments", "retrain", "wall", "room"},
    {"doctor"},
    {"cli"},
]
LONGEST_UNIT = 80  # lines of a function or class in src/


def concern(module: str) -> str:
    """``catdog.wall.feed`` -> ``wall``; ``catdog`` -> ``catdog``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported(path: Path) -> set[str]:
    """Every catdog module ``path`` imports, at its top or inside a function (a deferred import is still
    a dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "catdog":
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            modules = [
                name
                for name in names
                if (PACKAGE / f"{name.split('.', 1)[1].replace('.', '/')}.py").exists()
                or (PACKAGE / name.split(".", 1)[1].replace(".", "/")).is_dir()
            ]
            found |= set(modules) if node.module == "catdog" and modules else {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "catdog"}
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_module_has_its_place_in_the_layers():
    placed = {name for layer in LAYERS for name in layer}
    concerns = {concern(module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert concerns == placed, "a new module needs its place in LAYERS (and DEVELOPERS.md's layering)"


def test_no_module_imports_one_that_stands_above_it():
    layer_of = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = concern(module_name(path))
        for target in imported(path):
            there = concern(target)
            if there != here and layer_of[there] >= layer_of[here]:
                upward.append(f"{module_name(path)} imports {target} ({there} is not below {here})")
    assert not upward, "\n".join(upward)


def test_no_unit_in_the_package_is_longer_than_a_reader_holds_in_their_head():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST_UNIT:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, "\n".join(long)


def test_importing_catdog_reads_no_cgroup_and_starts_no_tensorflow():
    """`catdog --help` and the wall stay quick; the pools are sized when TensorFlow starts (test_threads)."""
    script = (
        "import sys, os, catdog, catdog.config, catdog.cli; "
        "print(sorted(m for m in ('catdog.threads', 'tensorflow', 'keras') if m in sys.modules), "
        "os.environ.get('TF_NUM_INTRAOP_THREADS'))"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_NUM_", "OMP_NUM"))}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "None"]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


DOCS = [
    REPO / "README.md",
    REPO / "DEVELOPERS.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "benchmarks" / "RESULTS.md",
]


def prose(text: str) -> str:
    """Markdown without its code blocks (a `# comment` in a bash block is no heading, a link there no link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(path.read_text()).splitlines() if re.match(r"#+ ", line)}


def test_every_link_in_the_docs_reaches_a_file_and_every_anchor_a_heading():
    """A reader who follows a link lands where it says, across README, the guides, DEVELOPERS and RESULTS."""
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(doc.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # a web address: not ours to check offline
            page, _, anchor = target.partition("#")
            path = (doc.parent / page).resolve() if page else doc
            if not path.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such file)")
            elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_is_short_and_sends_each_reader_to_their_guide():
    """What the kit is, the picture, the two commands, the three ways in, and where everything is."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 200 and max(len(line) for line in readme.splitlines()) <= 200
    assert readme.index("```mermaid") < readme.index("## Start here") < readme.index("## Three ways in")
    assert "make demo" in readme and "make test" in readme
    for guide in ("docs/instructors.md", "docs/learners.md", "docs/platform-engineers.md", "docs/reference.md"):
        assert f"]({guide})" in readme, guide


def test_the_readmes_picture_shows_every_topic_of_the_room():
    """The first picture a reader sees names each of the room's topics, as the settings name them."""
    from catdog.config import load_settings

    kafka = load_settings({}).kafka
    topics = {getattr(kafka, name) for name in dir(kafka) if name.endswith("_topic")}
    picture = (REPO / "README.md").read_text().split("```mermaid", 1)[1].split("```", 1)[0]
    missing = {topic for topic in topics if not re.search(rf"(?<![\w-]){re.escape(topic)}(?![\w-])", picture)}
    assert len(topics) >= 7 and not missing, f"README's picture misses {missing}"


def test_the_maps_of_the_package_name_every_module_the_layers_know():
    """docs/how-it-works.md's table, DEVELOPERS.md's layering and the wall's own list cannot drift from the code."""
    placed = {name for layer in LAYERS for name in layer} - {"catdog"}
    table = set(re.findall(r"^\| `catdog\.(\w+)`", (REPO / "docs" / "how-it-works.md").read_text(), re.MULTILINE))
    assert table == placed, f"how-it-works.md's table: missing {placed - table}, stale {table - placed}"
    layering = (REPO / "DEVELOPERS.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(\w+)`", layering))
    assert placed <= named, f"DEVELOPERS.md's layout misses {placed - named}"
    for package in ("wall", "kafka", "room", "doctor", "cli"):
        modules = {path.stem for path in (PACKAGE / package).glob("*.py") if path.stem != "__init__"}
        listed = set(re.findall(rf"catdog\.{package}\.(\w+)", (PACKAGE / package / "__init__.py").read_text()))
        listed |= set(re.findall(r"``(\w+)``", (PACKAGE / package / "__init__.py").read_text()))
        if package != "cli":
            assert modules <= listed, f"catdog/{package}/__init__.py's docstring misses {modules - listed}"


def test_no_tracked_file_is_empty():
    """An empty file in git is a stray (the file `oom`, removed once, came back with a `git add -A`)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    empty = [
        name
        for name in tracked.decode().split("\0")
        if name and (REPO / name).is_file() and (REPO / name).stat().st_size == 0
    ]
    assert not empty, f"empty files tracked by git: {empty}"


def test_ruff_finds_nothing_to_fix_and_nothing_to_reformat():
    """One style, checked: `ruff check` (pyflakes, pycodestyle, isort, bugbear, pyupgrade; every exception a
    `noqa` with its reason) and `ruff format --check`, as configured in pyproject.toml."""
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run([str(ruff), *command], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_every_noqa_names_its_code_and_says_why():
    """An exception to the linter is made where it is needed and explains itself (noqa, its code, a dash, why)."""
    bare = []
    for path in [*REPO.glob("src/**/*.py"), *REPO.glob("tests/**/*.py"), *REPO.glob("benchmarks/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = re.search(r"#\s*(ruff: )?noqa\b(.*)", line)
            if found and not re.match(r":\s*[A-Z]+\d+(,\s*[A-Z]+\d+)*\s*(-|\()\s*\S", found.group(2)):
                bare.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not bare, "\n".join(bare)
