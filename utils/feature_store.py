"""Inference outputs on disk: per-item features of a dataset or pool, in dataset order, in chunks.

A store is a folder with ``meta.json`` (what the features came from: checkpoint and its SHA-256, dataset,
split, augmentation, repeats, sizes) and one ``r<repeat>_c<chunk>.npz`` per (pass, chunk of ``chunk_size``
items), each written atomically, holding ``proj`` (projection-head output) and, for passes without
augmentation, ``feat`` (backbone features). Nothing ever needs the whole pool in one process's memory:
writers fill chunks independently (sharded across processes, skipped when already there), readers load a
pass of one kind (``load``), stream it (``iter_chunks``) or gather rows (``rows``).
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from utils.checkpoint import atomic_write

FORMAT = "ltssl-features-1"
# meta keys that must agree for a re-run to continue a store instead of refusing it
IDENTITY_KEYS = ("format", "checkpoint_sha256", "dataset", "split", "source", "augmentation", "repeats",
                 "num_items", "chunk_size", "seed", "kinds", "precision")


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- description -------------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "meta.json"

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def meta(self) -> dict:
        if not self.exists():
            raise FileNotFoundError(f"no inference output at {self.root} (missing {self.meta_path.name})")
        try:
            meta = json.loads(self.meta_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.meta_path}: not valid JSON ({e})") from e
        if meta.get("format") != FORMAT:
            raise ValueError(f"{self.meta_path}: not an inference output of this project (format "
                             f"{meta.get('format')!r}, expected {FORMAT!r})")
        return meta

    def create(self, meta: dict) -> None:
        """Write ``meta.json``, or check that an existing store was made with the same settings."""
        meta = {"format": FORMAT, **meta}
        if self.exists():
            old = self.meta()
            changed = [f"{k}: {old.get(k)!r} -> {meta.get(k)!r}" for k in IDENTITY_KEYS if old.get(k) != meta.get(k)]
            if changed:
                raise ValueError(f"{self.root} holds inference output made with other settings "
                                 f"({'; '.join(changed)}): choose another output folder or pass --overwrite")
            return
        text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        atomic_write(self.meta_path, lambda f: f.write(text.encode()))

    def num_chunks(self, meta: dict | None = None) -> int:
        meta = meta or self.meta()
        return -(-meta["num_items"] // meta["chunk_size"])

    def chunk_path(self, repeat: int, chunk: int) -> Path:
        return self.root / f"r{repeat:03d}_c{chunk:05d}.npz"

    def chunk_range(self, chunk: int, meta: dict | None = None) -> tuple[int, int]:
        meta = meta or self.meta()
        start = chunk * meta["chunk_size"]
        return start, min(start + meta["chunk_size"], meta["num_items"])

    def missing(self, meta: dict | None = None) -> list[tuple[int, int]]:
        """(repeat, chunk) pairs not written yet."""
        meta = meta or self.meta()
        return [(r, c) for r in range(meta["repeats"]) for c in range(self.num_chunks(meta))
                if not self.chunk_path(r, c).is_file()]

    def check_complete(self, command_hint: str = "") -> dict:
        meta = self.meta()
        missing = self.missing(meta)
        if missing:
            hint = f"; finish it with: {command_hint}" if command_hint else " (re-run its inference command)"
            raise ValueError(f"inference output {self.root} is incomplete: {len(missing)} of "
                             f"{meta['repeats'] * self.num_chunks(meta)} chunks missing{hint}")
        return meta

    # ---- writing -----------------------------------------------------------------------------------------
    def write_chunk(self, repeat: int, chunk: int, **arrays: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(self.chunk_path(repeat, chunk), lambda f: f.write(buffer.getvalue()))

    # ---- reading -----------------------------------------------------------------------------------------
    def _read(self, repeat: int, chunk: int, kind: str) -> np.ndarray:
        path = self.chunk_path(repeat, chunk)
        if not path.is_file():
            raise FileNotFoundError(f"inference chunk missing: {path}")
        with np.load(path, allow_pickle=False) as z:
            if kind not in z.files:
                raise ValueError(f"{path} holds no {kind!r} array (it has {', '.join(z.files)}): "
                                 f"backbone features are written only by passes without augmentation")
            return z[kind]

    def iter_chunks(self, kind: str, repeat: int = 0):
        """Yields ``(start, array)`` for consecutive chunks of one pass."""
        meta = self.meta()
        for c in range(self.num_chunks(meta)):
            yield self.chunk_range(c, meta)[0], self._read(repeat, c, kind)

    def load(self, kind: str, repeat: int = 0) -> np.ndarray:
        """One whole pass of one kind, (N, d) float32."""
        return np.concatenate([a for _, a in self.iter_chunks(kind, repeat)])

    def rows(self, kind: str, indices: np.ndarray, repeat: int = 0) -> np.ndarray:
        """The rows ``indices`` (any order) of one pass, reading only the chunks that hold them."""
        meta = self.meta()
        indices = np.asarray(indices, dtype=np.int64)
        out = None
        chunk_of = indices // meta["chunk_size"]
        for c in np.unique(chunk_of):
            block = self._read(repeat, int(c), kind)
            if out is None:
                out = np.empty((len(indices), block.shape[1]), dtype=block.dtype)
            hit = chunk_of == c
            out[hit] = block[indices[hit] - c * meta["chunk_size"]]
        if out is None:
            out = np.empty((0, meta["dims"][kind]), dtype=np.float32)
        return out
