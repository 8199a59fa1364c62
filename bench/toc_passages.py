"""Table-of-contents passages benchmark: does a search for a section's title find the section, or the contents page?

A manual's contents page lists every section title with a leader ("2.5. MEMORY MANAGEMENT . . . . . . 5"); its
chunks hold titles and little else, so a search for a title can rank the contents page above the section itself.
The card of a document then shows a list of headings as its best passage.

For each PDF given (or found under /usr/share/doc, as ``bench/pdf_text.py`` finds them): its contents pages are the
pages with at least ``TOC_LINES`` lines "title, leader, page number" (the leader as printed dots or as the "…" the
loader now writes); the queries are the titles listed there (two words or more, numbering removed, at most
``--per-doc`` per file, spread over the list).  All files are ingested into a fresh data folder with the configured
model (MOESEARCH_MODEL, default the served one); each query searches its own file (``SearchFilters(sources=...)``)
in hybrid and in dense mode, and the best passage is counted as a contents-page passage or not.

Prints per file and overall the share of title queries whose best passage is on a contents page, and the share
whose best passage is elsewhere and holds the title (the section's heading, most often); "PASS"/"FAIL" for "at
most 10% overall in hybrid mode".  Nothing is written into the repository.

    python bench/toc_passages.py /usr/share/doc/{bzip2/manual.pdf.gz,debian-policy/fhs/fhs-3.0.pdf.gz,\
        libtasn1-doc/libtasn1.pdf,nettle-dev/nettle.pdf.gz,zlib1g-dev/crc-doc.1.0.pdf.gz}
    python bench/toc_passages.py --json out.json                 # every PDF under /usr/share/doc
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer import IndexerSettings, Pipeline  # noqa: E402
from indexer.extract import extract  # noqa: E402
from indexer.pipeline import SearchFilters, Source  # noqa: E402

TOC_LINES = 5  # lines "title leader number" that make a page a contents page
TARGET = 0.10
ENTRY = re.compile(r"^(?P<title>.*?\S)\s*(?:(?:\.\s?){4,}|…)\s*(?:\d+|[ivxlc]+)$", re.IGNORECASE)
NUMBERING = re.compile(r"^(?:(?:\d+|[A-Z])(?:\.\d+)*\.?|[IVXL]+\.|chapter \d+\.?)\s+", re.IGNORECASE)


def toc_entries(text: str) -> list[str]:
    return [m.group("title") for line in text.split("\n") if (m := ENTRY.match(line.strip()))]


def folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def titles(pages: list[tuple[int, str]], per_doc: int) -> tuple[set[int], list[str]]:
    """The contents pages' numbers and up to ``per_doc`` distinct titles listed there, spread over the list."""
    toc_pages, found = set(), []
    for number, text in pages:
        entries = toc_entries(text)
        if len(entries) >= TOC_LINES:
            toc_pages.add(number)
            found += [NUMBERING.sub("", e).strip(" .") for e in entries]
    unique = list(dict.fromkeys(t for t in found if len(t.split()) >= 2 and len(t) <= 120))
    step = max(1, len(unique) / per_doc) if unique else 1
    return toc_pages, [unique[int(i * step)] for i in range(min(per_doc, len(unique)))]


def pdfs(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    docs = Path("/usr/share/doc")
    return sorted(p for p in [*docs.rglob("*.pdf"), *docs.rglob("*.pdf.gz")] if p.is_file())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pdfs", nargs="*", help="PDF files (default: every PDF under /usr/share/doc)")
    p.add_argument("--per-doc", type=int, default=30, help="title queries per file")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    files = pdfs(args.pdfs)
    if not files:
        print("no PDFs given or found under /usr/share/doc", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="moesearch-toc-") as tmp:
        settings = IndexerSettings.from_env(data_dir=Path(tmp) / "data")
        plans, sources = {}, []
        for path in files:
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            name = path.name.removesuffix(".gz")
            pages = extract(data, name).pages
            toc_pages, queries = titles(pages, args.per_doc)
            if queries:
                plans[name] = (toc_pages, queries)
                sources.append(Source.upload(name, data))
        if not plans:
            print("no file has a contents page with leaders", file=sys.stderr)
            return 2
        with Pipeline(settings) as pipeline:
            t0 = time.perf_counter()
            report = pipeline.ingest(sources)
            ingest_s = time.perf_counter() - t0
            for f in report.files:
                if f.status != "ok":
                    print(f"{f.name}: {f.status} {f.reason}", file=sys.stderr)
            rows, totals = [], {"hybrid": [0, 0, 0], "dense": [0, 0, 0]}
            for name, (toc_pages, queries) in plans.items():
                row = {"file": name, "toc_pages": sorted(toc_pages), "queries": len(queries)}
                for mode in ("hybrid", "dense"):
                    on_toc = section = 0
                    for q in queries:
                        hits = pipeline.search(q, k=1, filters=SearchFilters(sources=(name,)), mode=mode)
                        on_toc += bool(hits) and hits[0].page in toc_pages
                        section += bool(hits) and hits[0].page not in toc_pages and folded(q) in folded(hits[0].text)
                    row[f"{mode}_toc_rate"] = on_toc / len(queries)
                    row[f"{mode}_section_rate"] = section / len(queries)
                    totals[mode][0] += on_toc
                    totals[mode][1] += len(queries)
                    totals[mode][2] += section
                rows.append(row)
                print(f"{name:40s} contents pages {len(toc_pages):3d}  queries {len(queries):3d}  best passage on a "
                      f"contents page: hybrid {row['hybrid_toc_rate']:.0%}, dense {row['dense_toc_rate']:.0%}; "
                      f"a passage with the title: hybrid {row['hybrid_section_rate']:.0%}, "
                      f"dense {row['dense_section_rate']:.0%}")
            stats, model = pipeline.stats(), pipeline.model_info().model_id
    overall = {mode: hit / n for mode, (hit, n, _) in totals.items()}
    sections = {mode: found / n for mode, (_, n, found) in totals.items()}
    print(f"overall ({totals['hybrid'][1]} title queries, {stats.chunks} chunks, ingest {ingest_s:.0f} s, "
          f"model {model}, load {os.getloadavg()[0]:.1f}): best passage on a contents page: "
          f"hybrid {overall['hybrid']:.1%}, dense {overall['dense']:.1%}; elsewhere with the title: "
          f"hybrid {sections['hybrid']:.1%}, dense {sections['dense']:.1%}")
    ok = overall["hybrid"] <= TARGET
    print(f"{'PASS' if ok else 'FAIL'}: at most {TARGET:.0%} in hybrid mode")
    if args.json:
        Path(args.json).write_text(json.dumps({"files": rows, "overall": overall, "sections": sections,
                                               "chunks": stats.chunks, "ingest_s": ingest_s}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
