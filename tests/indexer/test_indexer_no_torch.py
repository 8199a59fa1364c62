from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_indexer_never_imports_torch(tiny_model_dir, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import indexer.cli, indexer.pipeline, indexer.settings, indexer.store.edge, indexer.store.server
        from indexer import Pipeline, Source
        from indexer.settings import IndexerSettings
        settings = IndexerSettings(data_dir={str(tmp_path / "d")!r}, model_dir={str(tiny_model_dir)!r}, device="cpu",
                                   chunk_tokens=48, chunk_overlap=8)
        with Pipeline(settings) as p:
            assert p.ingest([Source.upload("a.txt", b"torch-free indexing of a small text")]).ok == 1
            assert p.search("indexing")
        bad = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "transformers")))
        print("IMPORTED", bad)
        sys.exit(1 if bad else 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
