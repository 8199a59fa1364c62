"""Task experts (MoTE): config, exact upcycling per task, one expert per sequence (torch and ONNX), ONNX == torch
per task and file, expert averaging, and the runtime's task API."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from embedder.__main__ import main
from embedder.average import average, task_weights
from embedder.config import MoeBertConfig, MoESpec
from embedder.export import export
from embedder.model import MoeBertModel, mean_pool, truncate_normalize
from embedder.moe import MoEBlock
from embedder.onnx_graph import moe_nodes
from embedder.runtime import Embedder
from embedder.settings import ONNX_FILES, TASKS, EmbeddingSettings
from embedder.upcycle import default_dense_dir, upcycle

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
TEXTS = ["hello world", "x", "task experts route by the task a text is embedded for " * 6, "Ünïcödé 🙂 3.14"]
BOUNDS = {"fused": 0.9999, "gather": 0.9999, "dense": 0.9999, "int8": 0.99}


# --- config -----------------------------------------------------------------------------------------------------
def test_task_config_derives_experts_and_round_trips(tmp_path):
    cfg = MoeBertConfig(**TINY, moe_mode="task", tasks=["search_query", "symmetric"])
    assert (cfg.num_experts, cfg.num_experts_per_tok) == (2, 1) and cfg.has_task_layers
    assert cfg.task_ids(["symmetric", "search_query"]) == [1, 0]
    cfg.save_pretrained(tmp_path)
    back = MoeBertConfig.from_pretrained(tmp_path)
    assert back.moe_mode == "task" and back.tasks == ["search_query", "symmetric"]
    assert back.metadata()["moe.tasks"] == "search_query,symmetric"
    with pytest.raises(ValueError, match=r"one of this model's tasks \['search_query', 'symmetric'\]"):
        cfg.task_ids(["search_document"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="task", tasks=("search_query", "retrieval"), num_experts=2, num_experts_per_tok=1), "among"),
    (dict(mode="task", tasks=("symmetric", "symmetric"), num_experts=2, num_experts_per_tok=1), "not repeat"),
    (dict(mode="task", tasks=("symmetric",), num_experts=2, num_experts_per_tok=1), "num_experts must be 1"),
    (dict(mode="task", tasks=(), num_experts=1, num_experts_per_tok=1), "at least one of"),
    (dict(mode="topk", tasks=("symmetric",)), "only for moe_mode='task'"),
    (dict(mode="router"), r"moe_mode must be one of \('topk', 'task'\)"),
])
def test_bad_task_specs_name_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MoESpec(num_layers=2, **kwargs)


# --- the block --------------------------------------------------------------------------------------------------
def task_block(E=3, seed=0):
    torch.manual_seed(seed)
    spec = MoESpec(num_layers=2, mode="task", tasks=TASKS[:E], num_experts=E, num_experts_per_tok=1)
    block = MoEBlock(32, 64, spec)
    with torch.no_grad():
        for e in block.experts:
            for p in e.parameters():
                p.normal_(0, 0.3)
    return block


def test_task_block_equals_its_tasks_expert_per_sequence():
    """Sparse dispatch == all-experts-masked reference == a loop applying each sequence's own expert."""
    block = task_block()
    x = torch.randn(4, 6, 32)
    task_ids = torch.tensor([2, 0, 2, 1])
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 4:] = False
    sparse, logits = block(x, mask, task_ids)
    assert logits is None and block.router is None
    block.set_dispatch("dense")
    dense, _ = block(x, mask, task_ids)
    loop = torch.stack([block.experts[int(t)](x[b]) * mask[b, :, None] for b, t in enumerate(task_ids)])
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sparse, loop, atol=1e-5, rtol=1e-5)


def test_task_block_computes_one_expert_per_token():
    block = task_block()
    seen = [0] * 3
    for e, expert in enumerate(block.experts):
        expert.register_forward_hook(lambda _m, inp, _out, e=e: seen.__setitem__(e, seen[e] + inp[0].shape[0]))
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[0, 3:] = False
    block(torch.randn(3, 5, 32), mask, torch.tensor([0, 0, 2]))
    assert seen == [3 + 5, 0, 5]  # real tokens of the sequences of each task; expert 1 has none and is skipped


def test_task_block_needs_task_ids():
    with pytest.raises(ValueError, match="task_ids"):
        task_block()(torch.randn(2, 3, 32))


# --- upcycling --------------------------------------------------------------------------------------------------
def embed_hf(model_dir, texts, task=None, dense=False):
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    batch = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    kw = {} if dense else {"task_ids": model.task_tensor(task, len(texts))}
    with torch.no_grad():
        h = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kw).last_hidden_state
    return truncate_normalize(mean_pool(h, batch["attention_mask"]))


@pytest.mark.parametrize("task", TASKS)
def test_tiny_task_upcycle_equals_dense_for_every_task(tiny_dense_dir, tmp_path, task):
    out = upcycle(tmp_path / "t", tiny_dense_dir, moe_mode="task", max_length=128)
    ref = embed_hf(tiny_dense_dir, TEXTS, dense=True)
    got = embed_hf(out, TEXTS, task)
    assert (ref * got).sum(-1).min() >= 0.99999
    assert EmbeddingSettings.load(out).tasks == TASKS


def test_minilm_task_upcycle_equals_dense_for_every_task(tmp_path):
    """The real all-MiniLM-L6-v2, three task experts in layers 1, 3, 5: each task embeds like the base."""
    out = upcycle(tmp_path / "minilm-task", moe_mode="task")
    ref = embed_hf(default_dense_dir(), TEXTS, dense=True)
    for task in TASKS:
        got = embed_hf(out, TEXTS, task)
        assert (ref * got).sum(-1).min() >= 0.9999, task
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["moe_mode"] == "task" and cfg["tasks"] == list(TASKS) and cfg["moe_layers"] == [1, 3, 5]


def test_task_model_requires_and_checks_task_ids(tiny_task_model_dir):
    model = MoeBertModel.from_pretrained(tiny_task_model_dir).eval()
    ids = torch.randint(1000, 2000, (2, 5))
    with pytest.raises(ValueError, match="pass task_ids"):
        model(ids)
    with pytest.raises(ValueError, match=r"task_ids must be in 0\.\.2"):
        model(ids, task_ids=torch.tensor([0, 3]))


# --- ONNX -------------------------------------------------------------------------------------------------------
def tokenized(emb, texts, task):
    encs = emb.tokenizer.encode_batch([emb.settings.prefix_for(task) + t for t in texts])
    T = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(encs), T, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = torch.tensor(e.ids)
        mask[i, :len(e.ids)] = 1
    return ids, mask


@pytest.mark.parametrize("variant", ["fused", "gather", "dense", "int8"])
def test_onnx_matches_torch_for_every_task(tiny_task_model_dir, variant):
    model = MoeBertModel.from_pretrained(tiny_task_model_dir).eval()
    emb = Embedder(tiny_task_model_dir, device="cpu", variant=variant)
    assert emb.moe_mode == "task" and emb.tasks == TASKS and emb.task_layers == (1,)
    vecs = {}
    for task in TASKS:
        ids, mask = tokenized(emb, TEXTS, task)
        with torch.no_grad():
            ref, logits = model.embed(ids, mask, task_ids=model.task_tensor(task, len(TEXTS)))
        vecs[task] = got = emb.embed(TEXTS, task=task)
        assert logits == ()
        assert (ref.numpy() * got).sum(-1).min() >= BOUNDS[variant], (variant, task)
    # the experts differ, so the tasks give different vectors for the same text
    assert (vecs["search_query"] * vecs["symmetric"]).sum(-1).min() < 0.999


def fc1_inputs(proto):
    inits = {t.name for t in proto.graph.initializer}
    return [next(i for i in n.input if i not in inits) for n in proto.graph.node
            if n.op_type in ("Gemm", "MatMul") and any(".fc1." in i and i in inits for i in n.input)]


@pytest.mark.parametrize("variant", ["gather", "dense"])
def test_exported_task_layer_computes_one_expert_per_sequence(tiny_task_model_dir, variant):
    """With every expert's input exposed: in the gather/scatter file each real token reaches exactly one expert,
    the one of its sequence's task (expert e sees the tokens of the sequences of task e only); in the dense
    baseline every expert sees every token (the cost of all tasks)."""
    proto = onnx.load(str(tiny_task_model_dir / "onnx" / ONNX_FILES[variant]))
    names = fc1_inputs(proto)
    assert len(names) == 3
    for name in names:
        proto.graph.output.add(name=name)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.full((4, 9), 1500, dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    task_ids = np.array([0, 2, 2, 0])
    outs = session.run(names, {"input_ids": ids, "attention_mask": mask, "task_ids": task_ids})
    rows = [o.shape[0] for o in outs]
    per_seq = mask.sum(1)
    if variant == "gather":
        assert rows == [int(per_seq[task_ids == e].sum()) for e in range(3)]
    else:
        assert rows == [mask.size] * 3


def test_fused_task_layer_is_a_top1_moe_node(tiny_task_model_dir):
    proto = onnx.load(str(tiny_task_model_dir / "onnx" / ONNX_FILES["fused"]))
    nodes = moe_nodes(proto)
    assert len(nodes) == 1
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["k"] == 1 and attrs["normalize_routing_weights"] == 1
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask", "task_ids"]
    assert [o.name for o in proto.graph.output] == ["last_hidden_state"]


# --- runtime ----------------------------------------------------------------------------------------------------
def test_runtime_task_api(tiny_task_model_dir):
    emb = Embedder(tiny_task_model_dir, device="cpu")
    np.testing.assert_allclose(emb.embed_query("a query"), emb.embed(["a query"], task="search_query")[0], atol=1e-6)
    np.testing.assert_allclose(emb.embed_documents(["a doc"]), emb.embed(["a doc"], task="search_document"),
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"one of this model's tasks \('search_query', 'search_document', "
                                         r"'symmetric'\), got 'clustering'"):
        emb.embed(["x"], task="clustering")
    with pytest.raises(ValueError, match="name a task"):
        emb.encode(["x"])
    routing = emb.route("which expert", task="symmetric")
    assert routing.task == "symmetric" and routing.task_layers == (1,) and routing.layers == []


def test_model_without_tasks_takes_query_and_document_only(tiny_model_dir):
    emb = Embedder(tiny_model_dir, device="cpu")
    assert emb.tasks == () and emb.moe_mode == "topk"
    np.testing.assert_allclose(emb.embed(["q"], task="search_query")[0], emb.embed_query("q"), atol=1e-6)
    with pytest.raises(ValueError, match=r"\('search_query', 'search_document'\), got 'symmetric'"):
        emb.embed(["x"], task="symmetric")
    assert emb.route("q").task == "search_query"


# --- expert averaging -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [None, {"search_query": 1.0, "search_document": 3.0, "symmetric": 0.0}])
def test_average_is_the_weighted_mean_of_the_experts(tiny_task_model_dir, tmp_path, weights):
    out = average(tiny_task_model_dir, tmp_path / "avg", weights)
    src = MoeBertModel.from_pretrained(tiny_task_model_dir).eval()
    dense = MoeBertModel.from_pretrained(out).eval()
    assert dense.config.moe_layers == [] and not dense.expert_blocks()
    w = np.array([1, 1, 1]) / 3 if weights is None else np.array([1, 3, 0]) / 4
    experts = src.task_blocks()[0].experts
    layer = dense.encoder.layer[1]
    for fc, lin in (("fc1", layer.intermediate.dense), ("fc2", layer.output.dense)):
        for kind in ("weight", "bias"):
            ref = sum(wi * getattr(getattr(e, fc), kind).detach().double().numpy()
                      for wi, e in zip(w, experts, strict=True))
            np.testing.assert_allclose(getattr(lin, kind).detach().numpy(), ref, atol=1e-6)
    torch.testing.assert_close(dense.encoder.layer[0].intermediate.dense.weight,
                               src.encoder.layer[0].intermediate.dense.weight)
    assert EmbeddingSettings.load(out).tasks == TASKS


def test_averaged_folder_exports_and_serves_every_task(tiny_task_model_dir, tmp_path):
    out = average(tiny_task_model_dir, tmp_path / "avg")
    export(out, variants=("int8",))
    emb = Embedder(out, device="cpu")
    assert emb.moe_mode == "dense" and emb.tasks == TASKS
    assert emb.embed(["x"], task="symmetric").shape == (1, 32)


def test_average_of_a_fresh_upcycle_is_the_dense_base(tiny_dense_dir, tmp_path):
    task = upcycle(tmp_path / "t", tiny_dense_dir, moe_mode="task", max_length=128)
    out = average(task, tmp_path / "avg")
    ref = embed_hf(tiny_dense_dir, TEXTS, dense=True)
    got = embed_hf(out, TEXTS, dense=True)
    assert (ref * got).sum(-1).min() >= 0.99999


def test_average_refuses_a_learned_moe_model(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="not a task-expert model"):
        average(tiny_model_dir, tmp_path / "avg")
    with pytest.raises(ValueError, match=r"weights name tasks \['bogus'\]"):
        task_weights(TASKS, {"bogus": 1.0})
    with pytest.raises(ValueError, match="not all 0"):
        task_weights(TASKS, {"symmetric": 0.0})


# --- CLI --------------------------------------------------------------------------------------------------------
def test_cli_upcycle_task_average(tiny_dense_dir, tmp_path, capsys):
    out = tmp_path / "cli-task"
    assert main(["upcycle", "--dense", str(tiny_dense_dir), "--out", str(out), "--experts", "task",
                 "--tasks", "search_query,search_document"]) == 0
    assert json.loads((out / "config.json").read_text())["tasks"] == ["search_query", "search_document"]
    assert main(["average", str(out), "--out", str(tmp_path / "avg"), "--weights", "search_query=2"]) == 0
    extra = EmbeddingSettings.load(tmp_path / "avg").extra
    assert extra["average_weights"] == {"search_query": 1.0, "search_document": 0.0}
    assert main(["upcycle", "--dense", str(tiny_dense_dir), "--out", str(tmp_path / "bad"), "--experts", "task",
                 "--tasks", "clustering"]) == 2
    assert "tasks must be among" in capsys.readouterr().err
