"""The silhouette pool file (HDF5): its layout, a reader and a writer. Imports no renderer or
mesh code, so models, training and the Hub read pools without them.

- `SilhouettePool(path, in_memory=False)`: random access; `pool[i]` is one H×W bool mask,
  `pool.masks(a, b)` several, `pool.sample(rng)` a random one; per-silhouette columns as arrays.
- `PoolWriter(h5, size).append(packed_masks, columns)`: appends silhouettes to a new file.
- `file_attributes(h5)`: the file's attributes as JSON-ready values.

Layout: `masks` N×H×(W/8) uint8, bit-packed along W (attrs packed="bits", width=W,
bitorder="big"), one mask per chunk; per silhouette `model_id`, `source`, `view`, `azimuth`,
`elevation` (degrees), `distance` (metres), `bbox` (x, y, w, h in pixels); file attrs:
`config` (JSON), `skipped` (JSON: model id → why it was left out), `models`, `views`, `seed`,
`yfov_degrees`, `renderer`, `ovbench_version`.

    from ovbench.formats.poolfile import SilhouettePool
    with SilhouettePool("ovbench-data/pool.h5", in_memory=True) as pool:
        mask = pool.sample(numpy.random.default_rng(0))
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ovbench.errors import InputError

COLUMNS = {"model_id": h5py.string_dtype(), "source": h5py.string_dtype(), "view": np.int16,
           "azimuth": np.float32, "elevation": np.float32, "distance": np.float32}


class PoolWriter:
    """Appends silhouettes to a new pool file (see the module docstring for the layout)."""

    def __init__(self, h5: h5py.File, size: int):
        self.h5, self.count = h5, 0
        masks = h5.create_dataset("masks", (0, size, size // 8), np.uint8, maxshape=(None, size, size // 8),
                                  chunks=(1, size, size // 8), compression="gzip", compression_opts=4,
                                  track_times=False)
        masks.attrs.update(packed="bits", width=size, bitorder="big")
        for name, dtype in COLUMNS.items():
            h5.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(4096,), track_times=False)
        h5.create_dataset("bbox", (0, 4), np.int32, maxshape=(None, 4), chunks=(4096, 4),
                          track_times=False)

    def append(self, packed_masks: np.ndarray, columns: dict) -> None:
        """`packed_masks` N×H×W/8 (np.packbits along W); `columns`: every COLUMNS name and bbox, N each."""
        count = len(packed_masks)
        for name, values in (("masks", packed_masks), *((n, columns[n]) for n in (*COLUMNS, "bbox"))):
            self.h5[name].resize(self.count + count, axis=0)
            self.h5[name][self.count:] = values
        self.count += count


def file_attributes(h5: h5py.File) -> dict:
    """A pool file's attributes as JSON-ready values (the config and skip list stay JSON text)."""
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in h5.attrs.items()}



class SilhouettePool:
    """Random access to a pool file; `in_memory` loads the packed masks (H×W/8 bytes each) once."""

    def __init__(self, path: Path, in_memory: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"silhouette pool not found: {self.path} (make one with `ovbench generate pool`)")
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as exc:  # h5py's error for empty, truncated and foreign files
            raise InputError(f"{self.path} is not a readable silhouette pool (truncated or not HDF5: {exc})") from None
        try:
            self._read(in_memory)
        except (KeyError, OSError, ValueError, TypeError) as exc:
            self._h5.close()
            raise InputError(f"{self.path} is not a complete ovbench pool ({type(exc).__name__}: {exc})") from None

    def _read(self, in_memory: bool) -> None:
        masks = self._h5["masks"]
        if masks.attrs.get("packed") != "bits":
            raise ValueError("no bit-packed masks")
        self.width = int(masks.attrs["width"])
        self._masks = masks[()] if in_memory else masks
        self.model_id = self._h5["model_id"].asstr()[()]
        self.source = self._h5["source"].asstr()[()]
        self.view = self._h5["view"][()]
        self.bbox = self._h5["bbox"][()]
        self.azimuth = self._h5["azimuth"][()]
        self.elevation = self._h5["elevation"][()]
        self.distance = self._h5["distance"][()]
        self.config = json.loads(self._h5.attrs["config"])
        self.attributes = file_attributes(self._h5)

    def masks(self, start: int, stop: int) -> np.ndarray:
        """Masks start..stop, unpacked (N×H×W bool)."""
        return self._unpack(self._masks[start:stop])

    def __len__(self) -> int:
        return len(self.bbox)

    def __getitem__(self, index: int) -> np.ndarray:
        return self._unpack(self._masks[index])

    def _unpack(self, packed: np.ndarray) -> np.ndarray:
        return np.unpackbits(packed, axis=-1, count=self.width).astype(bool)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self[int(rng.integers(len(self)))]

    def close(self) -> None:
        self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
