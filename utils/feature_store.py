"""Inference outputs on disk: per-item features of a dataset or pool, in dataset order, in chunks.

A store is a folder with ``meta.json`` (what the features came from: checkpoint and its SHA-256, dataset,
split, augmentation, repeats, sizes) and one ``r<repeat>_c<chunk>.npz`` per (pass, chunk of ``chunk_size``
items), each written atomically, holding ``proj`` (projection-head output) and, for passes without
augmentation, ``feat`` (backbone features), with the store's identity and the chunk's place in it, so a
chunk that is damaged (a truncated file) or comes from another store (another checkpoint or settings) is
never taken for a finished one. Nothing ever needs the whole pool in one process's memory:
writers fill chunks independently (sharded across processes, skipped when already there), readers load a
pass of one kind (``load``), stream it (``iter_chunks``) or gather rows (``rows``).
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from utils.checkpoint import atomic_write
from utils.errors import message

FORMAT = "ltssl-features-1"
# meta keys that must agree for a re-run to continue a store instead of refusing it
IDENTITY_KEYS = ("format", "checkpoint_sha256", "dataset", "split", "source", "augmentation", "repeats",
                 "num_items", "chunk_size", "seed", "kinds", "precision")
# everything that defines the content of a store (what caches of values computed from it are keyed on)
CONTENT_KEYS = (*IDENTITY_KEYS, "image_kind", "role", "dims")
REQUIRED_KEYS = ("format", "num_items", "chunk_size", "repeats", "augmentation", "kinds", "dims", "dataset", "split",
                 "role", "checkpoint", "checkpoint_sha256")


def content_identity(meta: dict) -> dict:
    """The fields of ``meta`` that define the store's content (not where its checkpoint lies)."""
    return {k: meta.get(k) for k in CONTENT_KEYS}


def identity_digest(meta: dict) -> str:
    return hashlib.sha256(json.dumps(content_identity(meta), sort_keys=True).encode()).hexdigest()


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
        except OSError as e:
            raise ValueError(f"cannot read {self.meta_path}: {message(e).split(': ', 1)[-1]}") from e
        if not isinstance(meta, dict):
            raise ValueError(f"{self.meta_path}: not an inference output of this project (a JSON "
                             f"{type(meta).__name__}, expected an object)")
        if meta.get("format") != FORMAT:
            raise ValueError(f"{self.meta_path}: not an inference output of this project (format "
                             f"{meta.get('format')!r}, expected {FORMAT!r})")
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        numbers = ("num_items", "chunk_size", "repeats")
        if missing or not all(isinstance(meta[k], int) and not isinstance(meta[k], bool) and meta[k] >= 0
                              for k in numbers) or meta["chunk_size"] < 1 or not isinstance(meta["dims"], dict):
            raise ValueError(f"{self.meta_path} is damaged ({'no ' + ', '.join(missing) if missing else 'bad sizes'}): "
                             f"re-make the output with infer_features.py --overwrite")
        return meta

    def create(self, meta: dict) -> None:
        """Write ``meta.json``, or check that an existing store was made with the same settings."""
        meta = {"format": FORMAT, "chunk_identity": True, **meta}
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
        """(repeat, chunk) pairs not written yet, or written damaged or by another store (see
        :meth:`chunk_problem`): a re-run writes them again."""
        meta = meta or self.meta()
        return [(r, c) for r in range(meta["repeats"]) for c in range(self.num_chunks(meta))
                if self.chunk_problem(r, c, meta) is not None]

    def chunk_problem(self, repeat: int, chunk: int, meta: dict | None = None) -> str | None:
        """None for a chunk that is complete and this store's; else what is wrong with it. Reads only the
        archive's directory, the array headers and the small identity entries, never the features."""
        meta = meta or self.meta()
        path = self.chunk_path(repeat, chunk)
        if not path.is_file():
            return "missing"
        start, stop = self.chunk_range(chunk, meta)
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                for kind in meta["kinds"]:
                    if f"{kind}.npy" not in names:
                        return f"no {kind!r} array"
                    with archive.open(f"{kind}.npy") as f:
                        version = np.lib.format.read_magic(f)
                        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                                       np.lib.format.read_array_header_2_0)
                        shape, _, dtype = read_header(f)
                    expected = (stop - start, meta["dims"].get(kind))
                    if tuple(shape) != expected or dtype != np.float32:
                        return f"{kind!r} is {dtype} {tuple(shape)}, expected float32 {expected}"
                if meta.get("chunk_identity") or "_identity.npy" in names:
                    if "_identity.npy" not in names or "_place.npy" not in names:
                        return "it carries no identity (not written by this store)"
                    with np.load(path, allow_pickle=False) as z:
                        identity, place = str(z["_identity"]), z["_place"].tolist()
                    if identity != identity_digest(meta):
                        return "it was written for another checkpoint or other settings"
                    if place != [repeat, chunk, start, stop]:
                        return f"it holds pass/chunk/items {place}, expected {[repeat, chunk, start, stop]}"
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
            return f"damaged or truncated ({message(e)})"
        return None

    def check_complete(self, command_hint: str = "") -> dict:
        meta = self.meta()
        problems = {}
        for r in range(meta["repeats"]):
            for c in range(self.num_chunks(meta)):
                problem = self.chunk_problem(r, c, meta)
                if problem is not None:
                    problems[(r, c)] = problem
        if problems:
            hint = f"; finish it with: {command_hint}" if command_hint else " (re-run its inference command)"
            missing = sum(p == "missing" for p in problems.values())
            bad = {k: v for k, v in problems.items() if v != "missing"}
            detail = f"{missing} missing" if missing else ""
            if bad:
                (r, c), why = next(iter(bad.items()))
                detail += (", " if detail else "") + f"{len(bad)} unusable (e.g. {self.chunk_path(r, c).name}: {why})"
            raise ValueError(f"inference output {self.root} is incomplete: of "
                             f"{meta['repeats'] * self.num_chunks(meta)} chunks, {detail}{hint}")
        return meta

    # ---- writing -----------------------------------------------------------------------------------------
    def write_chunk(self, repeat: int, chunk: int, **arrays: np.ndarray) -> None:
        """One chunk, with the store's identity; refuses features that are not finite."""
        meta = self.meta()
        for kind, values in arrays.items():
            if not np.isfinite(values).all():
                raise ValueError(f"the {kind!r} features of pass {repeat}, chunk {chunk} of {self.root} are not "
                                 f"finite (NaN or infinite): nothing of this chunk was written; check the "
                                 f"checkpoint, or try --precision fp32")
        start, stop = self.chunk_range(chunk, meta)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays, _identity=np.array(identity_digest(meta)),
                 _place=np.array([repeat, chunk, start, stop], dtype=np.int64))
        atomic_write(self.chunk_path(repeat, chunk), lambda f: f.write(buffer.getvalue()))

    # ---- reading -----------------------------------------------------------------------------------------
    def _read(self, repeat: int, chunk: int, kind: str) -> np.ndarray:
        path = self.chunk_path(repeat, chunk)
        if not path.is_file():
            raise FileNotFoundError(f"inference chunk missing: {path} (re-run the inference command that made "
                                    f"{self.root}: it writes the missing chunks)")
        meta = self.meta()
        problem = self.chunk_problem(repeat, chunk, meta)
        if problem is not None:
            raise ValueError(f"inference chunk {path} is unusable: {problem}; re-run the inference command that "
                             f"made {self.root} (it rewrites unusable chunks)")
        try:
            with np.load(path, allow_pickle=False) as z:
                if kind not in z.files:
                    raise ValueError(f"{path} holds no {kind!r} array (it has {', '.join(z.files)}): "
                                     f"backbone features are written only by passes without augmentation")
                return z[kind]
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"inference chunk {path} is damaged ({message(e)}); re-run the inference command "
                             f"that made {self.root} (it rewrites unusable chunks)") from e

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
