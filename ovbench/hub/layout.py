"""The Hub repository of one or more ovbench datasets, written as local files.

    README.md                                  dataset card (YAML: configs, dataset_info, licence, tasks)
    <config>/<split>-00000-of-00002.parquet    rows (schema.py), shards of at most --max-shard-size
    <config>/manifest.json                     dataset folders: the folder's manifest, unchanged
    <config>/coco_header.json                  per split: the annotation file's other top-level keys
    pool/pool.json                             the pool file's attributes

Configs are named by kind (ovd, dyce, pool). Pushing uploads exactly this folder, and reading a
Hub copy back (fetch.py) rebuilds the dataset folder from it byte for byte.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from datasets import Features
from datasets.arrow_writer import ParquetWriter
from tqdm import tqdm

from ovbench.errors import InputError
from ovbench.formats import dataset
from ovbench.formats.fileio import write_json
from ovbench.hub import schema

ROWS_PER_GROUP = 100          # parquet row group: what the Hub's viewer and streaming read at once
COCO_HEADER = "coco_header.json"
POOL_ATTRIBUTES = "pool.json"
RECORD_LISTS = ("images", "annotations", "occluders")  # everything else in annotations.json is header
POOL_SPLIT = "train"


@dataclass(frozen=True)
class Source:
    """One dataset to publish: a dataset folder (ovd, dyce) or a pool file."""

    kind: str
    path: Path

    @property
    def config(self) -> str:
        return self.kind

    def features(self) -> Features:
        return schema.POOL_FEATURES if self.kind == "pool" else schema.features(self.kind)


def _is_dataset_folder(path: Path) -> bool:
    return (path / dataset.MANIFEST).is_file() or (path / dataset.PARTS).is_dir()


def find_sources(paths: list[Path]) -> list[Source]:
    """Dataset folders, pool files, or folders holding them (as `ovbench generate` writes)."""
    sources = []
    for path in map(Path, paths):
        if path.is_file() and path.suffix in (".h5", ".hdf5"):
            sources.append(Source("pool", path))
        elif _is_dataset_folder(path):
            sources.append(Source(dataset.load_manifest(path)["kind"], path))  # refuses unfinished ones
        elif path.is_dir():
            found = find_sources([p for p in sorted(path.iterdir())
                                  if _is_dataset_folder(p) or p.suffix in (".h5", ".hdf5")])
            if not found:
                raise InputError(f"{path} holds no ovbench dataset folder or pool file")
            sources += found
        else:
            raise InputError(f"{path} is not an ovbench dataset folder or pool file")
    configs = Counter(source.config for source in sources)
    twice = sorted(name for name, n in configs.items() if n > 1)
    if twice:
        raise InputError(f"more than one {', '.join(twice)} dataset given: a repository holds one of each")
    order = {"ovd": 0, "dyce": 1, "pool": 2}
    return sorted(sources, key=lambda s: order.get(s.kind, 3))


@dataclass
class SplitStats:
    images: int = 0
    objects: int = 0
    occluders: int = 0
    num_bytes: int = 0
    occlusion: list = field(default_factory=list)
    categories: Counter = field(default_factory=Counter)


@dataclass
class ConfigLayout:
    """What was written for one config: its files and the numbers the card reports."""

    source: Source
    features: Features
    splits: dict                  # split → SplitStats
    manifest: dict | None = None  # dataset folders
    attributes: dict | None = None  # pools


def payload_bytes(value) -> int:
    """About what a row takes in Arrow: its bytes and strings, 8 bytes for anything else."""
    if isinstance(value, bytes | str):
        return len(value)
    if isinstance(value, dict):
        return sum(payload_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(payload_bytes(v) for v in value)
    return 8


class ShardWriter:
    """Rows into `<split>-NNNNN-of-MMMMM.parquet` files of at most `max_bytes` each (rows' bytes and
    strings; Arrow adds only offsets to that).

    Each shard is written by `datasets`' own ParquetWriter (the options `push_to_hub` uses:
    uncompressed PLAIN image bytes, content-defined chunking, page index), in row groups of
    ROWS_PER_GROUP; a shard only goes over the limit when a single row does."""

    def __init__(self, folder: Path, split: str, features: Features, max_bytes: int):
        self.folder, self.split, self.features, self.max_bytes = folder, split, features, max_bytes
        self.pending: list[dict] = []
        self.pending_bytes = 0
        self.paths: list[Path] = []
        self.writer = None
        self.shard_bytes = 0
        self.num_bytes = 0

    def add(self, row: dict) -> None:
        size = payload_bytes(row)
        if self.shard_bytes + self.pending_bytes + size > self.max_bytes and (self.pending or self.shard_bytes):
            self._write_group()
            self._close_shard()
        self.pending.append(row)
        self.pending_bytes += size
        if len(self.pending) == ROWS_PER_GROUP:
            self._write_group()

    def _open_shard(self) -> None:
        self.paths.append(self.folder / f"{self.split}-{len(self.paths):05d}.parquet")
        self.writer = ParquetWriter(path=str(self.paths[-1]), features=self.features,
                                    writer_batch_size=ROWS_PER_GROUP)

    def _write_group(self) -> None:
        if not self.pending:
            return
        if self.writer is None:
            self._open_shard()
        table = pa.Table.from_pylist([self.features.encode_example(row) for row in self.pending],
                                     schema=self.features.arrow_schema)
        self.writer.write_table(table)
        self.shard_bytes += self.pending_bytes
        self.num_bytes += table.nbytes
        self.pending, self.pending_bytes = [], 0

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.finalize()
        self.writer, self.shard_bytes = None, 0

    def close(self) -> None:
        """Finish the last shard; name the shards with their count (the Hub's convention)."""
        self._write_group()
        if not self.paths:  # an empty split still gets a shard, so that it loads
            self._open_shard()
        self._close_shard()
        for index, path in enumerate(self.paths):
            path.rename(path.with_name(f"{self.split}-{index:05d}-of-{len(self.paths):05d}.parquet"))


def split_rows(split_dir: Path, kind: str, document: dict):
    """The Hub rows of one split (its annotations.json read as `document`), in image order."""
    names = {c["id"]: c["name"] for c in document["categories"]}
    annotations, occluders = {}, {}
    for ann in document["annotations"]:
        annotations.setdefault(ann["image_id"], []).append(ann)
    for occluder in document.get("occluders", []):
        occluders.setdefault(occluder["image_id"], []).append(occluder)
    for image in document["images"]:
        yield schema.to_row(kind, image, annotations.get(image["id"], []), occluders.get(image["id"], []),
                            names, lambda name: (split_dir / name).read_bytes())


def _write_dataset(source: Source, root: Path, max_bytes: int, bar: tqdm) -> ConfigLayout:
    manifest = dataset.load_manifest(source.path)
    folder = root / source.config
    features = source.features()
    layout = ConfigLayout(source, features, {}, manifest=manifest)
    headers = {}
    for split in manifest["splits"]:
        split_dir = source.path / split
        document = dataset.load_annotations(source.path, split)
        headers[split] = {key: value for key, value in document.items() if key not in RECORD_LISTS}
        stats = SplitStats()
        writer = ShardWriter(folder, split, features, max_bytes)
        try:
            for row in split_rows(split_dir, source.kind, document):
                writer.add(row)
                stats.images += 1
                stats.objects += len(row["objects"])
                stats.occluders += len(row["occluders"])
                stats.occlusion += [obj["occlude_rate"] for obj in row["objects"]]
                stats.categories.update(obj["category"] for obj in row["objects"])
                bar.update()
        except schema.SchemaError as exc:
            raise InputError(f"{source.path}/{split}: {exc}") from exc
        writer.close()
        stats.num_bytes = writer.num_bytes
        layout.splits[split] = stats
    (folder / dataset.MANIFEST).write_bytes((source.path / dataset.MANIFEST).read_bytes())
    write_json(folder / COCO_HEADER, headers)
    return layout


def _write_pool(source: Source, root: Path, max_bytes: int, bar: tqdm) -> ConfigLayout:
    from ovbench.formats.poolfile import SilhouettePool

    folder = root / source.config
    features = source.features()
    with SilhouettePool(source.path) as pool:
        columns = {name: getattr(pool, name).tolist() for name in schema.POOL_COLUMNS}
        writer = ShardWriter(folder, POOL_SPLIT, features, max_bytes)
        for start in range(0, len(pool), ROWS_PER_GROUP):
            masks = pool.masks(start, start + ROWS_PER_GROUP)
            for index, mask in enumerate(masks, start):
                writer.add({"silhouette": {"bytes": schema.mask_png(mask), "path": None},
                            **{name: values[index] for name, values in columns.items()}})
            bar.update(len(masks))
        writer.close()
        stats = SplitStats(images=len(pool), num_bytes=writer.num_bytes,
                           categories=Counter({"vehicle": len(pool)}))
        attributes = pool.attributes
    write_json(folder / POOL_ATTRIBUTES, attributes)
    return ConfigLayout(source, features, {POOL_SPLIT: stats}, attributes=attributes)


def count_rows(sources: list[Source]) -> int:
    from ovbench.formats.poolfile import SilhouettePool

    total = 0
    for source in sources:
        if source.kind == "pool":
            with SilhouettePool(source.path) as pool:
                total += len(pool)
        else:
            total += sum(c["images"] for c in dataset.load_manifest(source.path)["splits"].values())
    return total


def write_layout(sources: list[Source], root: Path, max_bytes: int, progress: bool = True) -> list[ConfigLayout]:
    """Write every source's shards and side files under `root` (the card is written by card.py)."""
    layouts = []
    with tqdm(total=count_rows(sources), unit="row", desc="publish", disable=not progress) as bar:
        for source in sources:
            (root / source.config).mkdir(parents=True)
            write = _write_pool if source.kind == "pool" else _write_dataset
            layouts.append(write(source, root, max_bytes, bar))
    return layouts
