"""Status page: the model and the onnxruntime provider really running, the store, counts, the last ingest."""

from __future__ import annotations

import streamlit as st

from app.render import inject_css, key_values, report_table, service_or_stop
from app.snippets import local_time

inject_css()
service = service_or_stop()
stats = service.stats()
card = service.model_info()

st.markdown("## :material/monitor_heart: Status")
with st.container(horizontal=True):
    st.metric("Documents", stats.documents, border=True)
    st.metric("Passages (chunks)", stats.chunks, border=True)
    st.metric("Provider", card.provider.removesuffix("ExecutionProvider"), border=True,
              help="The onnxruntime execution provider the embedder's session really runs on")
    st.metric("Vector size", stats.dim, border=True)

left, right = st.columns(2, gap="large")
with left:
    st.markdown("### Model")
    st.markdown(f"**{card.model_id}**  \n`{card.model_dir}`")
    if card.summary:
        st.markdown(card.summary)
    s = card.settings
    rows = {"model file": card.model_file, "session providers": ", ".join(card.session_providers),
            "available providers": ", ".join(card.available_providers),
            "onnxruntime": card.onnxruntime_version, "device setting": service.settings.device,
            "pooling": s.get("pooling", ""), "Matryoshka dims": ", ".join(map(str, s.get("matryoshka_dims", []))),
            "max length": s.get("max_length", ""), "query prefix": repr(s.get("query_prefix", "")),
            "document prefix": repr(s.get("document_prefix", ""))}
    key_values(rows)
with right:
    st.markdown("### Store")
    kind = {"edge": "embedded (qdrant-edge)", "local": "embedded (qdrant-client local mode)",
            "memory": "in memory", "server": "Qdrant server"}.get(stats.backend, stats.backend)
    rows = {"backend": kind, "location": stats.location, "collection": stats.collection,
            "index built with": stats.model_id, "configured model": stats.configured_model_id,
            "re-index needed": "yes" if stats.reindex_needed else "no",
            "interrupted chunks (hidden)": stats.incomplete_chunks,
            "chunk tokens / overlap": f"{stats.extra.get('chunk_tokens', '')} / {stats.extra.get('chunk_overlap', '')}"}
    if stats.cluster is not None:
        rows.update({f"cluster: {k}": v for k, v in stats.cluster.items()})
    key_values(rows)
    if (job := service.busy) is not None:
        st.info(f"Running now: {job.describe()}")

st.markdown("### Last ingest")
last = service.last_report
if last is None:
    st.caption("Nothing has been ingested through the app yet.")
else:
    report_table(last, f"{last.get('label', 'ingest')}, finished {local_time(last.get('finished_at', ''))}")
