"""The docs stay usable: a short README with the two set-up commands, no dead relative links (files and the
headings they point at), and every benchmark script listed in bench/README.md with its figures."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 12 * 1024
LINK = re.compile(r"!?\[(?:[^\]\n]|\](?=[^(]))*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def documents() -> list[Path]:
    docs = [README, ROOT / "ARCHITECTURE.md", ROOT / "bench" / "README.md", ROOT / "trainer" / "README.md"]
    return [p for p in docs if p.is_file()] + sorted((ROOT / "docs").glob("*.md"))


def links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))  # code blocks hold no links
    text = re.sub(r"`[^`\n]*`", "", text)  # nor does inline code
    return LINK.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (f"README.md is {size} bytes, over {README_MAX_BYTES}: move details to docs/ "
                                      "(operations.md, embedder.md, ...) or bench/README.md and link them")


def test_readme_keeps_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    for command in ("bash scripts/run.sh", "bash scripts/test.sh"):
        assert command in text, command
        assert (ROOT / command.split()[1]).is_file(), command


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    dead = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
            continue
        file, _, fragment = target.partition("#")
        dest = doc if not file else (doc.parent / file).resolve()
        if not dest.exists():
            dead.append(f"{target} (no {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif fragment and dest.suffix == ".md" and fragment.lower() not in anchors(dest):
            dead.append(f"{target} (no heading #{fragment} in {dest.relative_to(ROOT)})")
    assert not dead, f"{doc.relative_to(ROOT)}: dead links: {dead}"


def test_every_benchmark_is_in_bench_readme():
    text = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted((ROOT / "bench").glob("*.py")) if f"{p.name}" not in text]
    assert not missing, f"bench/README.md does not list {missing}: add a row (latest figure, date, CPU, command)"


def test_slug_matches_github():
    assert slug("Model versions: switch, roll back, clean up") == "model-versions-switch-roll-back-clean-up"
    assert slug("Cluster deployment (docker compose)") == "cluster-deployment-docker-compose"
    assert slug("Throughput against this CPU's ceiling") == "throughput-against-this-cpus-ceiling"
    assert slug("Task experts (MoTE): task-aware training") == "task-experts-mote-task-aware-training"
    assert slug("The English recipe: `configs/recipe.toml`") == "the-english-recipe-configsrecipetoml"
