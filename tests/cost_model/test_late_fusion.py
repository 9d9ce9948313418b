"""Late fusion: a graph encoded once serves every target, and training targets keep learned offsets."""

import numpy as np
import torch

import targets
from cost_model.batch import collate
from cost_model.featurize import FEATURE_NAMES, graph_tensors
from cost_model.ledgformer import LeDGFormer, LeDGFormerConfig
from cost_model.predictor import LatencyPredictor, TrainConfig, graph_batches
from cost_model.roofline import roofline_targets
from targets.schema import FEATURE_NAMES as TARGET_FEATURE_NAMES

from test_predictor import _chain, _data

DESCS = [targets.load(n) for n in ("gtx1080ti-pytorch-fp32-b32", "pixel3-tflite", "rtx2080ti-pytorch-fp32-b1")]


def _late_model() -> LeDGFormer:
    torch.manual_seed(0)
    config = LeDGFormerConfig(text_dim=8, num_node_features=len(FEATURE_NAMES),
                              num_target_features=len(TARGET_FEATURE_NAMES), dim=16, layers=2, heads=4,
                              dropout=0.0, fusion="late", factors=4)
    return LeDGFormer(config).eval()


def test_pairs_sharing_a_graph_equal_pairs_encoded_alone():
    model = _late_model()
    graphs = [graph_tensors(_chain([8, 16, 32])), graph_tensors(_chain([64, 8]))]
    gen = torch.Generator().manual_seed(1)
    texts = sorted({t for g in graphs for t in g.texts})
    text_emb = dict(zip(texts, torch.randn(len(texts), 8, generator=gen)))  # one embedding per text, as encoders do
    target_emb = torch.randn(len(DESCS), 8, generator=gen)
    feats = torch.tensor([d.to_features()[0] for d in DESCS], dtype=torch.float32)
    masks = torch.tensor([d.to_features()[1] for d in DESCS], dtype=torch.float32)

    def run(graph_ids: list[int], pairs: list[tuple[int, int]]):
        batch = collate([graphs[i] for i in graph_ids])
        emb = torch.stack([text_emb[t] for t in batch.texts])
        t = [p[1] for p in pairs]
        with torch.no_grad():
            return model(batch, emb, target_emb[t], feats[t], masks[t], roofline_targets([DESCS[i] for i in t]),
                         pair_graph=torch.tensor([graph_ids.index(p[0]) for p in pairs]))

    pairs = [(0, 0), (0, 1), (1, 0), (0, 2), (1, 2)]
    shared = run([0, 1], pairs)
    alone = [run([g], [(g, t)]) for g, t in pairs]
    np.testing.assert_allclose(shared.latency_ms.numpy(), [o.latency_ms.item() for o in alone], rtol=1e-5)
    np.testing.assert_allclose(shared.per_op_ms.numpy(), torch.cat([o.per_op_ms for o in alone]).numpy(), rtol=1e-5)
    assert shared.bound.shape == shared.per_op_ms.shape


def test_graph_batches_keep_graphs_whole_and_cover_every_row_once():
    keys = ["a", "b", "a", "c", "b", "a", "d", "d", "e"]
    make = graph_batches(keys, per_epoch=len(keys), steps=3)
    out = list(make(np.random.default_rng(0)))
    assert len(out) == 3
    assert sorted(np.concatenate(out).tolist()) == list(range(len(keys)))
    for batch in out:
        for key in {keys[i] for i in batch}:
            assert set(batch.tolist()) >= {i for i, k in enumerate(keys) if k == key}
    assert [b.tolist() for b in make(np.random.default_rng(0))] == [b.tolist() for b in out]


def test_training_targets_keep_learned_offsets_through_save_and_load(tmp_path):
    graphs, rows = _data(0)
    names = {"gtx1080ti-pytorch-fp32-b1": targets.load("gtx1080ti-pytorch-fp32-b1"),
             "pixel3-tflite": targets.load("pixel3-tflite")}
    unseen = targets.load("rtx2080ti-pytorch-fp32-b1")
    model = LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                             model={"dim": 16, "layers": 1, "heads": 4, "dropout": 0.0, "factors": 4},
                             train=TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=0))
    model.fit(graphs, names, rows)
    assert model.model_.config.fusion == "late" and model.model_.config.known_targets == 2
    assert set(model.known_targets_) == {d.content_hash() for d in names.values()}
    assert float(model.model_.target_table.detach().abs().sum()) > 0  # trained, not left at zero
    everything = {**names, unseen.name: unseen}
    pairs = [(k, t) for k in sorted(graphs)[:5] for t in everything]
    pred = model.predict(graphs, everything, pairs)
    # pairs are predicted grouped by graph and returned in the caller's order
    shuffled = np.random.default_rng(0).permutation(len(pairs))
    np.testing.assert_allclose(model.predict(graphs, everything, [pairs[i] for i in shuffled], batch_size=4),
                               pred[shuffled], rtol=1e-5)
    model.save_pretrained(tmp_path / "ckpt")
    again = LatencyPredictor.from_pretrained(tmp_path / "ckpt")
    assert again.known_targets_ == model.known_targets_
    np.testing.assert_allclose(again.predict(graphs, everything, pairs), pred, rtol=1e-5)
    # an unseen target gets no table row: zeroing the table leaves its predictions unchanged
    with torch.no_grad():
        again.model_.target_table.zero_()
    changed = again.predict(graphs, everything, pairs)
    seen = np.array([t != unseen.name for _, t in pairs])
    np.testing.assert_allclose(changed[~seen], pred[~seen], rtol=1e-5)
    assert not np.allclose(changed[seen], pred[seen], rtol=1e-3)
