"""LeDG-Former end to end: invariances, breakdown, robustness, ablation configs, a toy fit."""

import json
import math

import pytest
import torch
from ledg_graphs import (
    branching_dag,
    config,
    graph,
    inputs_for,
    other_topological_order,
    permuted,
    random_dag,
    text_embeddings,
)

from cost_model.batch import GraphTensors, collate
from cost_model.ledgformer import LeDGFormer, LeDGFormerConfig
from cost_model.losses import latency_loss
from targets.errors import CheckpointError


def _model(**overrides) -> LeDGFormer:
    torch.manual_seed(0)
    model = LeDGFormer(config(**overrides)).eval()
    for block in model.blocks:  # leave the zero-initialized gates / FiLM: make them matter
        if block.attn.gate.proj is not None:
            torch.nn.init.normal_(block.attn.gate.proj.weight)
        if block.film is not None:
            torch.nn.init.normal_(block.film.proj.weight, std=0.3)
    return model


def _predict(model, graphs, target_rows=None):
    batch = collate(graphs, model.config.relations)
    with torch.no_grad():
        return model(*inputs_for(batch, target_rows))


def test_config_json_round_trip_and_validation():
    cfg = config(gate="learned", relations=("self", "parents"), variance_head=True)
    assert LeDGFormerConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(CheckpointError, match="unknown keys"):
        LeDGFormerConfig.from_dict({**cfg.to_dict(), "extra": 1})
    with pytest.raises(ValueError, match="does not divide"):
        config(heads=3)
    with pytest.raises(ValueError, match="static"):
        config(gate="static", heads=4)


HEADS = pytest.mark.parametrize("head", ["roofline", "free"])


@HEADS
def test_prediction_does_not_depend_on_the_topological_order(head):
    model = _model(head=head)
    n, edges = 12, branching_dag(12, seed=7)
    g = graph(n, edges, seed=2)
    perm = other_topological_order(n, edges, seed=11)
    assert perm != list(range(n))
    a, b = _predict(model, [g]), _predict(model, [permuted(g, perm)])
    assert torch.allclose(a.latency_ms, b.latency_ms, rtol=1e-5)
    assert torch.allclose(a.per_op_ms, b.per_op_ms[torch.tensor(perm)], rtol=1e-5)


@HEADS
def test_graph_alone_equals_graph_in_a_batch(head):
    model = _model(head=head)
    graphs = [graph(9, random_dag(9, 1), seed=1), graph(3, [(0, 2)], seed=2), graph(14, random_dag(14, 3), seed=3)]
    together = _predict(model, graphs, target_rows=torch.tensor([4, 1, 6]))
    for k, g in enumerate(graphs):
        alone = _predict(model, [g], target_rows=torch.tensor([[4, 1, 6][k]]))
        assert torch.allclose(alone.latency_ms, together.latency_ms[k : k + 1], rtol=1e-5)


@HEADS
def test_per_op_breakdown_sums_to_the_total(head):
    model = _model(variance_head=True, head=head)
    graphs = [graph(6, random_dag(6, 0)), graph(2, [(0, 1)]), graph(10, random_dag(10, 4))]
    out = _predict(model, graphs)
    batch = collate(graphs)
    per_graph = torch.zeros(3).index_add(0, batch.batch, out.per_op_ms)
    assert bool((out.per_op_ms > 0).all())
    assert torch.allclose(per_graph, out.latency_ms, rtol=1e-6)
    assert torch.allclose(out.log_latency_ms.exp(), out.latency_ms, rtol=1e-5)
    assert out.log_var is not None and out.log_var.shape == (3,)


def test_output_shift_of_the_free_head_is_exact_in_log_space():
    model = _model(head="free")
    graphs = [graph(5, random_dag(5, 2)), graph(1, [])]
    before = _predict(model, graphs).log_latency_ms
    model.init_output_bias(model.node_head.bias.item() + 2.0 + math.log(3.0), 3.0)
    assert torch.allclose(_predict(model, graphs).log_latency_ms, before + 2.0, atol=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"gate": "static", "heads": 8},
        {"gate": "learned"},
        {"bgiffn": False},
        {"film": False},
        {"global_token": False},
        {"global_token": False, "film": False, "relations": ("children", "parents")},
        {"use_target_features": False},
        {"variance_head": True},
        {"head": "free"},
        {"head": "free", "use_target_features": False},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default",
)
def test_single_node_and_isolated_nodes_stay_finite(overrides):
    model = _model(**overrides).train()
    graphs = [graph(1, []), graph(4, [(0, 1)]), graph(5, random_dag(5, 9))]
    out = model(*inputs_for(collate(graphs, model.config.relations)))
    loss = latency_loss(out, torch.tensor([1.0, 2.0, 3.0])).total
    loss.backward()
    assert bool(torch.isfinite(out.latency_ms).all()) and bool(torch.isfinite(loss))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


def test_input_validation():
    model = _model()
    batch = collate([graph(3, [(0, 1)])])
    batch_, texts, emb, values, mask, _ = inputs_for(batch)
    with pytest.raises(ValueError, match="node_text_emb"):
        model(batch, texts[:, :3], emb, values, mask)
    with pytest.raises(CheckpointError, match="node features"):
        model(collate([GraphTensors(["a"], torch.zeros(1, 2), torch.zeros(2, 0))]), text_embeddings(["a"]), emb,
              values, mask)
    with pytest.raises(ValueError, match="relations"):
        model(collate([graph(3, [(0, 1)])], relations=("self",)), texts, emb, values, mask)
    with pytest.raises(ValueError, match="roofline_targets"):
        model(batch, texts, emb, values, mask)
    no_work = collate([GraphTensors(["a"], torch.zeros(1, 5), torch.zeros(2, 0))])
    with pytest.raises(ValueError, match="per-kernel work"):
        model(no_work, text_embeddings(["a"]), emb, values, mask, inputs_for(no_work)[-1])


def test_a_few_steps_fit_a_toy_latency_law():
    """latency = scale(target) * sum of node FLOPs; FLOPs are feature 0 (log1p), scale 1 or 10."""
    gen = torch.Generator().manual_seed(0)
    graphs, labels, rows = [], [], []
    for k in range(16):
        n = 3 + k % 6
        g = graph(n, random_dag(n, k), seed=k)
        flops = torch.exp(torch.rand(n, generator=gen) * 5)
        g.x_num[:, 0] = torch.log1p(flops)
        for target in (0, 1):
            graphs.append(g)
            rows.append(target)
            labels.append(float(flops.sum()) * (1.0 if target == 0 else 10.0) / 100.0)
    batch = collate(graphs)
    rows_t, y = torch.tensor(rows), torch.tensor(labels)
    torch.manual_seed(0)
    model = LeDGFormer(config(dim=16, layers=2))
    model.fit_normalizers(batch.x_num)
    model.init_output_bias(float(y.log().mean()), float(batch.counts.float().mean()))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs = inputs_for(batch, rows_t)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = latency_loss(model(*inputs), y, group=rows_t, huber_delta=None, rank_weight=0.0).total
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.05 * losses[0], losses[::10]
    with torch.no_grad():
        log_pred = model(*inputs).log_latency_ms
    ratio = torch.exp(log_pred[1::2] - log_pred[0::2])  # same graph on target 1 vs target 0
    assert torch.allclose(ratio, torch.full_like(ratio, 10.0), rtol=0.25), ratio


def test_fit_normalizers_standardizes_and_leaves_constant_columns_alone():
    model = LeDGFormer(config())
    x = torch.randn(50, 5) * torch.tensor([1.0, 10.0, 0.1, 3.0, 0.0]) + 7.0
    values = torch.tensor([[1.0, 5.0, 0.0], [3.0, 99.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    model.fit_normalizers(x, values, mask)
    z = (x - model.x_num_mean) / model.x_num_std
    assert torch.allclose(z[:, :4].mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(z[:, :4].std(0, unbiased=False), torch.ones(4), atol=1e-4)
    assert torch.equal(z[:, 4], torch.zeros(50))
    assert model.target_mean.tolist() == [2.0, 5.0, 0.0]  # masked entries (99.0) ignored
    assert model.target_std.tolist() == [1.0, 1.0, 1.0]
