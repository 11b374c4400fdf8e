"""Publishing speed and size, in one run on this machine.

    python bench/publish.py [--images 300] [--size 256] [--workers 2] [--keep DIR]

Makes a built-in OVD set, then times:
- `ovbench publish --to` (validation, rows → parquet shards, card) and its shard writing alone,
  against `datasets`' own way to the same parquet (Dataset.from_generator over the same rows,
  then to_parquet: what building a DatasetDict for push_to_hub costs), with the ratio;
- the `ovbench validate` that publishing runs first, on its own;
- rebuilding the dataset folder from the shards (what `--data hub:` does once per commit).
Best of three runs each, interleaved. Also the published size against the folder's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import datasets
from tqdm import tqdm

from ovbench.cli import main as ovbench
from ovbench.formats.validate import validate
from ovbench.hub import fetch, layout, schema
from ovbench.hub.publish import parse_shard_size, publish


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def rows_of(root: Path, split: str):
    document = json.loads((root / split / "annotations.json").read_text())
    yield from layout.split_rows(root / split, "ovd", document)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the generated set here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    data = args.keep or work / "ovd"
    if not (data / "manifest.json").exists():
        ovbench(["generate", "ovd", "--splits", f"train={args.images}", "--size", str(args.size),
                 "--workers", str(args.workers), "--quiet", "--out", str(data)])
    images = json.loads((data / "manifest.json").read_text())["splits"]["train"]["images"]

    def ours(attempt: int) -> None:
        publish([data], "bench/ovd", to=work / f"repo-{attempt}", progress=False)

    def writing(attempt: int) -> None:
        (work / f"layout-{attempt}").mkdir()
        layout.write_layout(layout.find_sources([data]), work / f"layout-{attempt}",
                            parse_shard_size("500MB"), progress=False)

    def baseline(attempt: int) -> None:
        built = datasets.Dataset.from_generator(rows_of, features=schema.features("ovd"),
                                                gen_kwargs={"root": data, "split": "train"},
                                                cache_dir=str(work / f"hf-cache-{attempt}"))
        built.to_parquet(str(work / f"baseline-{attempt}.parquet"))

    # Best of three each, interleaved, so that the machine's noise hits all alike.
    times = {name: [] for name in ("ours", "writing", "baseline", "validate")}
    for attempt in range(3):
        for name, run in (("ours", ours), ("writing", writing), ("baseline", baseline),
                          ("validate", lambda _: validate(data))):
            started = time.perf_counter()
            run(attempt)
            times[name].append(time.perf_counter() - started)
    ours, writing, baseline, checking = (min(times[n]) for n in ("ours", "writing", "baseline", "validate"))

    started = time.perf_counter()
    with tqdm(disable=True) as bar:
        fetch._rebuild_folder(work / "repo-0", "ovd", work / "rebuilt", bar)
    rebuild = time.perf_counter() - started

    published = sum(p.stat().st_size for p in (work / "repo-0").rglob("*.parquet"))
    print(f"{images} OVD images at {args.size}²; folder {folder_bytes(data) / 1e6:.1f} MB, "
          f"parquet {published / 1e6:.1f} MB ({published / folder_bytes(data):.2f}×)")
    print(f"ovbench publish --to : {ours:6.2f} s  {images / ours:7.1f} img/s "
          f"(validation alone {checking:.2f} s; writing the shards alone {writing:.2f} s, "
          f"{images / writing:.1f} img/s)")
    print(f"datasets from_generator + to_parquet : {baseline:6.2f} s  {images / baseline:7.1f} img/s "
          f"→ ovbench's writing is {baseline / writing:.2f}× its speed")
    print(f"rebuild folder from shards : {rebuild:6.2f} s  {images / rebuild:7.1f} img/s")
    print(f"(row groups of {layout.ROWS_PER_GROUP})")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
