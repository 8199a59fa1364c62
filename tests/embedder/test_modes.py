"""The MoE mode strategies (embedder.modes): the table's contract, each mode's routing against a naive reference,
the fused export's logits picking what the block picks, the runtime feed and the trainer's parameter groups."""

import numpy as np
import pytest
import torch

from embedder.config import MoESpec
from embedder.modes import MODES, ROUTING_INPUTS, TASK, TOPK, MoEMode, get_mode
from embedder.moe import MoEBlock, route
from embedder.settings import TASKS


def block(mode: str, seed: int = 0) -> MoEBlock:
    torch.manual_seed(seed)
    kw = dict(num_experts=4, num_experts_per_tok=2) if mode == TOPK else \
        dict(tasks=TASKS, num_experts=len(TASKS), num_experts_per_tok=1)
    b = MoEBlock(8, 16, MoESpec(num_layers=2, mode=mode, **kw))
    if b.router is not None:
        torch.nn.init.normal_(b.router.weight, std=1.0)
    return b


def test_table_is_keyed_by_name_and_each_mode_keeps_its_contract():
    assert tuple(MODES) == (TOPK, TASK) and all(MODES[name].name == name for name in MODES)
    for mode in MODES.values():
        b = block(mode.name)
        assert (b.router is not None) == mode.learned and b.mode == mode
        assert set(mode.inputs) <= set(ROUTING_INPUTS)
        cfg = type("Cfg", (), {"tasks": list(b.tasks)})()
        assert list(mode.example_inputs(cfg, 2)) == list(mode.inputs)  # the export's example covers every input
        assert list(mode.feed(b.tasks, b.tasks[0] if b.tasks else None, 3)) == list(mode.inputs)
    with pytest.raises(ValueError, match=r"moe_mode must be one of \('topk', 'task'\), got 'hash'"):
        get_mode("hash")


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="two words", learned=True), "identifier"),
    (dict(name="m", learned=False, inputs=("domain_ids",)), "inputs must be among"),
    (dict(name="m", learned=False, default_tasks=("symmetric",)), "default_tasks without takes_tasks"),
])
def test_bad_modes_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MoEMode(**kwargs)


def test_topk_routes_the_router_logits_top_k():
    b = block(TOPK)
    x = torch.randn(10, 8)  # (N, H)
    weights, experts, logits = b.mode.route(b, x, None, x.shape)
    torch.testing.assert_close(logits, x @ b.router.weight.T)
    probs = torch.softmax(logits, -1)  # (N, E)
    for n in range(10):  # naive: the two largest probabilities, renormalised
        top = sorted(range(4), key=lambda e: -float(probs[n, e]))[:2]
        assert experts[n].tolist() == top
        torch.testing.assert_close(weights[n], probs[n, top] / probs[n, top].sum())
    torch.testing.assert_close(b.mode.fused_logits(b, x, None, x.shape), logits)


def test_task_mode_sends_each_sequence_to_its_tasks_expert_and_the_fused_logits_agree():
    b = block(TASK)
    x = torch.randn(3 * 5, 8)  # (B*T, H)
    task_ids = torch.tensor([2, 0, 1])
    weights, experts, logits = b.mode.route(b, x, task_ids, (3, 5, 8))
    assert logits is None
    assert experts[:, 0].tolist() == [2] * 5 + [0] * 5 + [1] * 5 and bool((weights == 1).all())
    fused = b.mode.fused_logits(b, x, task_ids, (3, 5, 8))  # (N, E): what the fused node routes on
    w, e = route(fused, 1, True)  # softmax + top-1, as com.microsoft::MoE computes
    torch.testing.assert_close(e, experts)
    torch.testing.assert_close(w, weights)
    with pytest.raises(ValueError, match="task_ids"):
        b.mode.route(b, x, None, (3, 5, 8))


def test_runtime_feed():
    task = get_mode(TASK)
    feed = task.feed(TASKS, "symmetric", 3, "tiny")
    assert feed["task_ids"].dtype == np.int64 and feed["task_ids"].tolist() == [TASKS.index("symmetric")] * 3
    with pytest.raises(ValueError, match="tiny has task experts: name a task"):
        task.feed(TASKS, None, 1, "tiny")
    assert get_mode(TOPK).feed((), None, 2) == {}


def test_expert_groups_give_each_task_its_own_expert():
    b = block(TASK)
    groups = b.mode.expert_groups(b)
    assert list(groups) == list(TASKS)
    for name, expert in zip(TASKS, b.experts, strict=True):
        assert [id(p) for p in groups[name]] == [id(p) for p in expert.parameters()]
    assert block(TOPK).mode.expert_groups(block(TOPK)) == {}  # every batch trains every expert


def test_shape_and_check():
    task, topk = get_mode(TASK), get_mode(TOPK)
    assert task.shape(8, 2, ("search_query", "symmetric")) == (2, 1) and task.shape(8, 2, ()) == (8, 2)
    assert topk.shape(8, 2, ()) == (8, 2) and topk.check(8, 2, ()) == ()
    assert task.check(2, 1, ["symmetric", "search_query"]) == ("symmetric", "search_query")
    assert topk.describe(1, 1, ()) == "one expert: MoE disabled (dense)"
    assert task.describe(3, 1, TASKS) == f"task experts (MoTE) for {', '.join(TASKS)}"
