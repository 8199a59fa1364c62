"""Router choices -> charts and tables for "why these results" (pure: numpy/pandas/altair, no Streamlit)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from indexer import RoutingView


def usage_frame(view: RoutingView) -> pd.DataFrame:
    """Long table: one row per (MoE layer, expert) with the share of routing weight it got."""
    usage = view.usage  # (L, E)
    rows = [{"layer": f"layer {layer}", "order": i, "expert": f"E{e}", "expert_id": e, "share": float(usage[i, e])}
            for i, layer in enumerate(view.layers) for e in range(view.num_experts)]
    return pd.DataFrame(rows)


def agreement(a: RoutingView, b: RoutingView) -> np.ndarray:
    """(L,) overlap of two texts' expert usage per layer: sum over experts of min(share_a, share_b), in [0, 1]."""
    return np.minimum(a.usage, b.usage).sum(axis=1)


def heatmap(view: RoutingView, title: str) -> alt.LayerChart:
    """Layers (rows) x experts (columns), coloured by the share of the text's routing weight."""
    data = usage_frame(view)
    data["label"] = [f"{s:.0%}" if s >= 0.05 else "" for s in data["share"]]
    # label ink against its own cell (the blues scale: dark cells from ~45%), not the page: readable on both themes
    data["ink"] = ["white" if s >= 0.45 else "#1f2328" for s in data["share"]]
    experts = [f"E{e}" for e in range(view.num_experts)]
    layers = [f"layer {layer}" for layer in view.layers]
    # Titles and axes take the theme's colours (Streamlit's chart theme); cells are spaced by band padding rather
    # than a stroke of the page colour, and an unused cell is a translucent grey that shows on either background.
    base = alt.Chart(data, title=alt.TitleParams(title, anchor="start", fontSize=13)).encode(
        x=alt.X("expert:N", sort=experts, title="expert", axis=alt.Axis(labelAngle=0),
                scale=alt.Scale(paddingInner=0.08)),
        y=alt.Y("layer:N", sort=layers, title=None, scale=alt.Scale(paddingInner=0.08)),
    )
    cells = base.mark_rect(cornerRadius=3).encode(
        color=alt.condition("datum.share > 0", alt.Color("share:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"),
                                                         legend=None), alt.value("rgba(128, 128, 128, 0.16)")),
        tooltip=[alt.Tooltip("layer:N"), alt.Tooltip("expert:N"), alt.Tooltip("share:Q", format=".0%")],
    )
    text = base.mark_text(fontSize=11).encode(text="label:N", color=alt.Color("ink:N", scale=None))
    return (cells + text).resolve_scale(color="independent").properties(width=alt.Step(32), height=alt.Step(28))


def token_table(view: RoutingView, max_tokens: int = 40) -> pd.DataFrame:
    """Per token: the experts chosen in each MoE layer with their weights ("E3 62% · E1 38%")."""
    rows = []
    for t, token in enumerate(view.tokens[:max_tokens]):
        row = {"token": token}
        for i, layer in enumerate(view.layers):
            order = np.argsort(-view.weights[i, t])
            row[f"layer {layer}"] = " · ".join(f"E{int(view.experts[i, t, j])} {view.weights[i, t, j]:.0%}"
                                               for j in order)
        rows.append(row)
    return pd.DataFrame(rows)
