"""What a data YAML names: the dataset root, the train and val image sources, the class names (DataSpec).

A data YAML (ultralytics format) has `path` (dataset root; relative to the YAML's folder, which is also
the root when empty), `train` and `val` (a folder, a .txt list of images or a list of those, relative
to the root) and `names` (list or {index: name}) or `nc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from nas.errors import NasError

IMG_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp"}


@dataclass
class DataSpec:
    """A resolved data YAML: absolute image sources per split and the class names."""

    train: list[Path]
    val: list[Path]
    names: list[str]
    yaml: Path | None = None

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)


def _names(d: dict, where: str) -> list[str]:
    names, nc = d.get("names"), d.get("nc")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise NasError(f"{where}: 'names' keys must be class indices 0..nc-1; fix the names mapping") from None
        if keys != list(range(len(keys))):
            raise NasError(f"{where}: 'names' must number the classes 0..{len(keys) - 1} without gaps")
        names = [str(names.get(k, names.get(str(k)))) for k in keys]
    elif isinstance(names, (list, tuple)):
        names = [str(n) for n in names]
    elif names is None:
        if not isinstance(nc, int) or nc < 1:
            raise NasError(f"{where}: give the class names ('names: [a, b]') or their count ('nc: 2')")
        names = [f"class{i}" for i in range(nc)]
    else:
        raise NasError(f"{where}: 'names' must be a list or a mapping {{index: name}}")
    if nc is not None and int(nc) != len(names):
        raise NasError(f"{where}: nc is {nc} but 'names' lists {len(names)} classes; make them agree")
    if not names:
        raise NasError(f"{where}: 'names' is empty; list the class names")
    return names


def load_data_yaml(data: str | Path | dict) -> DataSpec:
    """A data YAML path (or a loaded dict, whose paths are relative to the working directory) -> DataSpec."""
    if isinstance(data, dict):
        d, base, where, src = data, Path.cwd(), "data", None
    else:
        src = Path(data).expanduser()
        if src.is_dir() and (src / "data.yaml").is_file():
            src = src / "data.yaml"
        if not src.is_file():
            raise NasError(f"data YAML not found: {src}; pass an existing ultralytics-format data YAML")
        try:
            d = yaml.safe_load(src.read_text())
        except yaml.YAMLError as e:
            raise NasError(f"{src}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax") from None
        if not isinstance(d, dict):
            raise NasError(f"{src}: expected a mapping with path/train/val/names")
        base, where = src.resolve().parent, str(src)
    root = Path(str(d.get("path") or "")).expanduser()
    root = root if root.is_absolute() else (base / root)
    splits = {}
    for split in ("train", "val"):
        v = d.get(split)
        if not v:
            raise NasError(f"{where}: no '{split}:' entry; add the {split} images folder or .txt list")
        items = v if isinstance(v, (list, tuple)) else [v]
        paths = []
        for x in items:
            p = Path(str(x)).expanduser()
            paths.append((p if p.is_absolute() else root / p).resolve())
        splits[split] = paths
    return DataSpec(splits["train"], splits["val"], _names(d, where), None if src is None else src.resolve())


def list_images(sources: list[Path], split: str, where: str) -> list[Path]:
    """Image files from folders (searched recursively) and .txt lists, sorted per source; NasError if none."""
    files: list[Path] = []
    for src in sources:
        if src.is_dir():
            found = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMG_SUFFIXES and p.is_file())
        elif src.is_file() and src.suffix == ".txt":
            found = []
            for line in src.read_text().splitlines():
                line = line.strip()
                if not line:
                    continue
                p = Path(line)
                if not p.is_absolute():
                    p = src.parent / (line[2:] if line.startswith("./") else line)
                if p.suffix.lower() in IMG_SUFFIXES:
                    found.append(p.resolve())
        elif src.is_file() and src.suffix.lower() in IMG_SUFFIXES:
            found = [src]
        else:
            raise NasError(f"{split} images not found: {src} (from {where}); create it or fix '{split}:' there")
        files += found
    if not files:
        shown = ", ".join(str(s) for s in sources)
        raise NasError(f"{split} split is empty: no images in {shown} (from {where}); add images or fix '{split}:'")
    return files


__all__ = ["IMG_SUFFIXES", "DataSpec", "list_images", "load_data_yaml"]
