"""Datasets of same-shaped signals, read into one :class:`SignalSet`.

A nu-set fit (one NeoMLP backbone, one latent set per signal) needs every
signal at hand and of one shape, so a dataset is read whole into a single
array rather than streamed. :func:`load_set` understands:

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (offline);
* a folder of MNIST idx files (plain or gzipped);
* a folder of CIFAR-10's *binary* distribution (never the pickled one);
* a folder of images, sounds or short clips, flat (unlabelled) or with one
  subfolder per class, optionally split into ``train/`` and ``test/``. Hidden
  files and files of other types (a README, a CSV) are skipped. A clip's sound
  track is dropped: a video set holds its pictures only.

Sources without a split of their own use one fixed rule, so that train and
test never overlap and stay the same from run to run: item ``i`` (in the
sorted order) is a test item when ``i % 5 == 0``, a training item otherwise;
``"all"`` is every item.

Everything here reads raw bytes or decodes media; nothing is unpickled.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import options
from ..errors import NeofieldError
from ..media import AUDIO_SUFFIXES, Media, Selection, read_media

SPLITS = ("train", "test", "all")
KINDS = ("image", "audio", "video")
TEST_EVERY = 5  # the fixed split: every fifth item (index % 5 == 0) is a test item

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SOUND_SUFFIXES = frozenset(AUDIO_SUFFIXES)
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi"})
KIND_OF_SUFFIX = {**{s: "image" for s in IMAGE_SUFFIXES}, **{s: "audio" for s in SOUND_SUFFIXES},
                  **{s: "video" for s in VIDEO_SUFFIXES}}
KIND_NOUN = {"image": "images", "audio": "sounds", "video": "videos"}

DIGIT_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_SIDE = 32
CIFAR_RECORD = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE  # a label byte, then the R, G and B planes
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"

IDX_UBYTE = 0x08  # the idx format's type code for unsigned bytes
MNIST_PREFIXES = {"train": ("train",), "test": ("t10k",), "all": ("train", "t10k")}
DEFLATE_MAX_RATIO = 1032  # deflate never expands a byte of input into more than ~1,032 bytes of output
READ_CHUNK = 1 << 20


# ----------------------------------------------------------------------------------------------- the set


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool, and the set hashes by identity
class SignalSet:
    """N signals of one shape, with optional class labels.

    ``values`` keeps the signals' own storage type (uint8 pixels, float32
    samples): a float copy of a large image set would be four times larger,
    and the fitting code converts one batch at a time.
    """

    kind: str  # "image", "audio" or "video"
    values: np.ndarray  # image (N, H, W, C) uint8, C 1 or 3; video (N, F, H, W, 3) uint8; audio (N, S, C) float32
    labels: np.ndarray | None  # (N,) int64 indices into ``classes``; None for unlabelled data
    classes: tuple[str, ...]  # class names that labels index; () without labels
    names: tuple[str, ...]  # one per item: path relative to the root ("cat/001.png"), "digits/17", ...
    rate: float | None = None  # fps of video, sample rate of audio; None for images
    source: str = ""  # what was read, one line, for display and metadata

    def __post_init__(self) -> None:
        # Internal invariants (a bug here is ours, not the user's): ValueError, not NeofieldError.
        n = len(self.values)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.values.ndim != {"image": 4, "audio": 3, "video": 5}[self.kind]:
            raise ValueError(f"{self.kind} values of shape {self.values.shape}")
        if len(self.names) != n:
            raise ValueError(f"{len(self.names)} names for {n} items")
        if self.labels is None:
            if self.classes:
                raise ValueError("classes without labels")
        elif self.labels.shape != (n,) or (n and not 0 <= self.labels.min() <= self.labels.max() < len(self.classes)):
            raise ValueError(f"labels of shape {self.labels.shape} do not index {len(self.classes)} classes")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def item_shape(self) -> tuple[int, ...]:
        """The shape of one signal: ``values.shape[1:]``."""
        return tuple(self.values.shape[1:])

    def subset(self, index) -> SignalSet:
        """The items ``index`` picks (an int, a slice, an array of ints or a boolean mask), as a new set.

        ``classes`` is kept whole, so labels keep their meaning even when a
        class has no item left. A single int still gives a set of one.
        """
        picked = np.atleast_1d(np.arange(len(self))[index])
        return SignalSet(
            kind=self.kind,
            values=self.values[picked],
            labels=None if self.labels is None else self.labels[picked],
            classes=self.classes,
            names=tuple(self.names[i] for i in picked),
            rate=self.rate,
            source=self.source,
        )


# ----------------------------------------------------------------------------------------------- entry


def load_set(spec: str | Path, split: str = "train", limit: int | None = None,
             size: tuple[int, int] | None = None) -> SignalSet:
    """Read a dataset of same-shaped signals (see the module docstring for what ``spec`` may be).

    ``spec`` is the string ``"digits"`` or a folder (a folder that happens to be named
    digits is given as ``Path("digits")`` or ``"./digits"``).
    ``split`` is ``"train"``, ``"test"`` or ``"all"``. ``limit`` keeps the
    first ``limit`` items of the split (in sorted order; items past it are
    never decoded). ``size=(width, height)`` resizes every picture, so a
    folder of images of mixed sizes can be read; it does not apply to sounds.

    Raises :class:`NeofieldError`, one line, for anything that is not a
    dataset of one shape.
    """
    if split not in SPLITS:
        raise NeofieldError(f"unknown split {split!r}: use {', '.join(SPLITS)}")
    if isinstance(limit, np.integer):
        limit = int(limit)
    options.positive_int("limit", limit)
    size = _check_size(size)
    if isinstance(spec, str) and spec == "digits":
        return _load_digits(split, limit, size)

    root = Path(spec).expanduser()
    if not root.exists():
        raise NeofieldError(f"{root} does not exist (a dataset is a folder, or 'digits')")
    if not root.is_dir():
        raise NeofieldError(f"{root} is a file, not a dataset: a dataset is a folder, 'digits', a folder of "
                            f"MNIST idx files or of CIFAR-10 .bin batches{_parent_hint(root)}")
    _refuse_pickled_cifar(root)
    if _is_mnist(root):
        return _load_mnist(root, split, limit, size)
    cifar = _cifar_root(root)
    if cifar is not None:
        return _load_cifar(cifar, split, limit, size)
    return _load_folder(root, split, limit, size)


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if not isinstance(size, (tuple, list)) or len(size) != 2 or \
            not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size):
        raise NeofieldError(f"size must be two whole numbers (width, height), not {size!r}")
    return options.check_size("size", (int(size[0]), int(size[1])))


# ----------------------------------------------------------------------------------------------- splits


def split_indices(n: int, split: str) -> np.ndarray:
    """Which of ``n`` items (in sorted order) a split holds, for sources without a split of their own:
    test = every fifth item (index % 5 == 0), train = the rest, all = everything."""
    index = np.arange(n)
    if split == "all":
        return index
    is_test = index % TEST_EVERY == 0
    return index[is_test] if split == "test" else index[~is_test]


def _first(index: np.ndarray, limit: int | None) -> np.ndarray:
    return index if limit is None else index[:limit]


def _describe(what: str, split: str, kept: int, available: int) -> str:
    """``source``: e.g. "sklearn digits, train split (1,437)" or "..., train split, first 100 of 1,437"."""
    if kept < available:
        return f"{what}, {split} split, first {kept:,} of {available:,}"
    return f"{what}, {split} split ({kept:,})"


def _require_items(count: int, what: str, split: str) -> None:
    if count == 0:
        raise NeofieldError(f"the {split} split of {what} is empty")


# ----------------------------------------------------------------------------------------------- pictures


def _resize_all(values: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Every (H, W, C) uint8 picture of ``values`` at ``size`` (width, height), through Pillow's Lanczos
    filter, whose support widens when shrinking, so a smaller picture is averaged, not aliased."""
    if size is None or values.shape[2:0:-1] == size:
        return values
    from PIL import Image

    out = np.empty((len(values), size[1], size[0], values.shape[3]), np.uint8)
    for i, picture in enumerate(values):
        out[i] = _resize_picture(Image.fromarray(picture[..., 0] if picture.shape[2] == 1 else picture), size)
    return out


def _resize_picture(image, size: tuple[int, int]) -> np.ndarray:
    """A Pillow image (mode L or RGB) at ``size``, as (H, W, C) uint8."""
    from PIL import Image

    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


# ----------------------------------------------------------------------------------------------- digits


def _load_digits(split: str, limit: int | None, size: tuple[int, int] | None) -> SignalSet:
    """scikit-learn's 1,797 8x8 digits (values 0..16, scaled to 0..255), split by the fixed rule."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NeofieldError("the digits dataset needs scikit-learn: pip install 'neofield[sets]'") from None
    digits = load_digits()
    index = split_indices(len(digits.images), split)
    kept = _first(index, limit)
    values = np.round(digits.images[kept] * (255 / 16)).astype(np.uint8)[..., None]
    return SignalSet(
        kind="image",
        values=_resize_all(values, size),
        labels=digits.target[kept].astype(np.int64),
        classes=DIGIT_CLASSES,
        names=tuple(f"digits/{i}" for i in kept),
        source=_describe("sklearn digits", split, len(kept), len(index)),
    )


# ----------------------------------------------------------------------------------------------- MNIST


def _mnist_candidates(prefix: str, kind: str) -> Iterator[str]:
    """The names an MNIST file goes by: ``train-images-idx3-ubyte``, the ``train-images.idx3-ubyte``
    spelling some mirrors use, each plain or gzipped (plain first)."""
    dims = 3 if kind == "images" else 1
    for stem in (f"{prefix}-{kind}-idx{dims}-ubyte", f"{prefix}-{kind}.idx{dims}-ubyte"):
        yield stem
        yield stem + ".gz"


def _find_mnist_file(root: Path, prefix: str, kind: str) -> Path | None:
    for name in _mnist_candidates(prefix, kind):
        if (root / name).is_file():
            return root / name
    return None


def _is_mnist(root: Path) -> bool:
    return any(_find_mnist_file(root, p, k) for p in ("train", "t10k") for k in ("images", "labels"))


def _load_mnist(root: Path, split: str, limit: int | None, size: tuple[int, int] | None) -> SignalSet:
    """MNIST from its idx files: train -> train-*, test -> t10k-*, all -> both (train first)."""
    values, labels, names = [], [], []
    for prefix in MNIST_PREFIXES[split]:
        paths = []
        for kind in ("images", "labels"):
            path = _find_mnist_file(root, prefix, kind)
            if path is None:
                wanted = next(_mnist_candidates(prefix, kind))
                raise NeofieldError(f"{root} holds MNIST files but no {wanted} (or {wanted}.gz) for the {split} split")
            paths.append(path)
        images = read_idx(paths[0], ndim=3)
        targets = read_idx(paths[1], ndim=1)
        if len(images) != len(targets):
            raise NeofieldError(f"{paths[0].name} holds {len(images):,} images but {paths[1].name} "
                                f"{len(targets):,} labels")
        if len(targets) and targets.max() >= len(DIGIT_CLASSES):
            raise NeofieldError(f"{paths[1]}: label {int(targets.max())} is not a digit (0 to 9)")
        values.append(images)
        labels.append(targets)
        names.extend(f"mnist/{prefix}/{i}" for i in range(len(images)))
    shapes = {v.shape[1:] for v in values}
    if len(shapes) > 1:
        raise NeofieldError(f"{root}: the train and t10k images differ in size ({' and '.join(map(str, shapes))})")
    available = sum(len(v) for v in values)
    _require_items(available, f"MNIST at {root}", split)
    kept = slice(None) if limit is None else slice(0, limit)
    pictures = np.concatenate(values)[kept][..., None]
    return SignalSet(
        kind="image",
        values=_resize_all(pictures, size),
        labels=np.concatenate(labels)[kept].astype(np.int64),
        classes=DIGIT_CLASSES,
        names=tuple(names[kept]),
        source=_describe(f"MNIST at {root}", split, len(pictures), available),
    )


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An idx file of unsigned bytes with ``ndim`` dimensions (MNIST's format), plain or gzipped.

    The header (big-endian magic ``0x000008nn``, then ``nn`` uint32 sizes) is
    checked against the data's real length *before* anything that size is
    allocated, so a corrupt header claiming billions of images is refused
    at once, and a truncated file is an error rather than a short read.
    """
    gzipped = path.suffix == ".gz"
    on_disk = path.stat().st_size
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            head = _read_upto(stream, 4)
            if len(head) < 4:
                raise NeofieldError(f"{path} is too short to be an idx file")
            magic = struct.unpack(">I", head)[0]
            wanted = (IDX_UBYTE << 8) | ndim
            if magic != wanted:
                raise NeofieldError(f"{path} is not an idx file of {ndim}-d bytes "
                                    f"(magic 0x{magic:08x}, expected 0x{wanted:08x})")
            raw_dims = _read_upto(stream, 4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise NeofieldError(f"{path} is truncated (its header ends early)")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            if ndim > 1 and 0 in dims[1:]:
                raise NeofieldError(f"{path}: items of size {'x'.join(map(str, dims[1:]))}")
            expected = math.prod(dims)  # a Python int: no overflow however large the header claims
            header = 4 + 4 * ndim
            # the most data the file can hold: its remaining bytes, or deflate's best ratio of them
            most = on_disk - header if not gzipped else DEFLATE_MAX_RATIO * on_disk
            if expected > most:
                raise NeofieldError(f"{path}: the header claims {'x'.join(map(str, dims))} = {expected:,} bytes, "
                                    f"more than the file can hold (truncated or corrupt)")
            data = _read_upto(stream, expected + 1)  # one byte more than claimed: trailing data is an error too
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise NeofieldError(f"{path} cannot be read ({_first_line(exc)})") from None
    if len(data) < expected:
        raise NeofieldError(f"{path} is truncated: {len(data):,} of the {expected:,} bytes its header claims")
    if len(data) > expected:
        raise NeofieldError(f"{path} is longer than its header says ({'x'.join(map(str, dims))})")
    return np.frombuffer(data, np.uint8).reshape(dims)


def _read_upto(stream, n: int) -> bytearray:
    """Up to ``n`` bytes, read a chunk at a time, so memory follows the data actually there, not ``n``
    (a gzip reader's ``read(n)`` can set aside all ``n`` bytes before it knows how many exist)."""
    out = bytearray()
    while len(out) < n:
        chunk = stream.read(min(READ_CHUNK, n - len(out)))
        if not chunk:
            break
        out += chunk
    return out


# ----------------------------------------------------------------------------------------------- CIFAR-10


def _refuse_pickled_cifar(root: Path) -> None:
    """The python distribution of CIFAR-10 is pickles, and unpickling runs arbitrary code: say which to get."""
    pickled = root.name == "cifar-10-batches-py" or (root / "cifar-10-batches-py").is_dir() or \
        (root / "data_batch_1").is_file() or (root / "batches.meta").is_file()
    if pickled and _cifar_root(root) is None:
        raise NeofieldError(f"{root} looks like CIFAR-10's python (pickle) distribution, which neofield does not "
                            f"read: use the binary distribution, cifar-10-binary.tar.gz (cifar-10-batches-bin)")


def _cifar_root(root: Path) -> Path | None:
    """The folder holding CIFAR-10's .bin batches: ``root`` itself or its ``cifar-10-batches-bin``."""
    for folder in (root, root / "cifar-10-batches-bin"):
        if any((folder / name).is_file() for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)):
            return folder
    return None


def _cifar_classes(folder: Path) -> tuple[str, ...]:
    """The class names from ``batches.meta.txt`` (one a line), else CIFAR-10's standard ten."""
    meta = folder / "batches.meta.txt"
    if not meta.is_file():
        return CIFAR10_CLASSES
    try:
        names = tuple(line.strip() for line in meta.read_text("utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise NeofieldError(f"{meta} cannot be read ({_first_line(exc)})") from None
    if not names:
        raise NeofieldError(f"{meta} names no classes")
    return names


def _load_cifar(folder: Path, split: str, limit: int | None, size: tuple[int, int] | None) -> SignalSet:
    """CIFAR-10's binary batches: train -> the data_batch_*.bin present (in order), test -> test_batch.bin,
    all -> both. Each record is a label byte, then 1,024 R, 1,024 G and 1,024 B bytes (32x32, row-major)."""
    classes = _cifar_classes(folder)
    wanted = {"train": CIFAR_TRAIN_FILES, "test": (CIFAR_TEST_FILE,), "all": (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)}
    chosen = [folder / name for name in wanted[split] if (folder / name).is_file()]
    if not chosen:
        missing = CIFAR_TEST_FILE if split == "test" else "data_batch_1.bin ... data_batch_5.bin"
        raise NeofieldError(f"{folder} holds no {missing} for the {split} split")
    records, names = [], []
    for path in chosen:
        batch = _read_cifar_batch(path, len(classes))
        records.append(batch)
        names.extend(f"cifar10/{path.stem}/{i}" for i in range(len(batch)))
    available = len(names)
    kept = slice(None) if limit is None else slice(0, limit)
    rows = np.concatenate(records)[kept]
    # (N, 3, 32, 32) planes -> (N, 32, 32, 3) pixels
    pictures = np.ascontiguousarray(rows[:, 1:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1))
    return SignalSet(
        kind="image",
        values=_resize_all(pictures, size),
        labels=rows[:, 0].astype(np.int64),
        classes=classes,
        names=tuple(names[kept]),
        source=_describe(f"CIFAR-10 at {folder}", split, len(rows), available),
    )


def _read_cifar_batch(path: Path, n_classes: int) -> np.ndarray:
    """One .bin batch as (records, 3,073) uint8, its size and labels checked."""
    length = path.stat().st_size
    if length == 0 or length % CIFAR_RECORD:
        raise NeofieldError(f"{path} is not a CIFAR-10 batch: {length:,} bytes is not a whole number of "
                            f"{CIFAR_RECORD:,}-byte records (truncated?)")
    try:
        rows = np.fromfile(path, np.uint8).reshape(-1, CIFAR_RECORD)
    except (OSError, ValueError) as exc:
        raise NeofieldError(f"{path} cannot be read ({_first_line(exc)})") from None
    bad = np.flatnonzero(rows[:, 0] >= n_classes)
    if len(bad):
        raise NeofieldError(f"{path}: record {bad[0]} has label {rows[bad[0], 0]}, but there are {n_classes} classes")
    return rows


# ----------------------------------------------------------------------------------------------- folders


@dataclass
class _Listing:
    """The media files of a folder dataset, sorted, with their labels, before anything is decoded."""

    files: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    classes: list[str | None] = field(default_factory=list)  # each file's class folder, None if loose

    @staticmethod
    def join(parts: Sequence[_Listing]) -> _Listing:
        return _Listing([f for p in parts for f in p.files], [n for p in parts for n in p.names],
                        [c for p in parts for c in p.classes])


def _media_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` with a media suffix, hidden files and folders skipped, in a fixed order
    (by path components, so ``a/x`` comes before ``a-b/x``). Other files (a README, a CSV) are ignored."""
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in KIND_OF_SUFFIX]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def _list_part(root: Path, part: Path) -> _Listing:
    """The files of one part (the root, or its ``train``/``test`` folder): files in a subfolder belong to
    the class it names; files directly in ``part`` are unlabelled."""
    listing = _Listing()
    for path in _media_files(part):
        inside = path.relative_to(part).parts
        listing.files.append(path)
        listing.names.append(path.relative_to(root).as_posix())
        listing.classes.append(inside[0] if len(inside) > 1 else None)
    return listing


def _folder_kind(root: Path, files: Sequence[Path]) -> str:
    """The one kind of signal a folder holds; a mix of images, sounds and videos is an error."""
    first: dict[str, Path] = {}
    for path in files:
        first.setdefault(KIND_OF_SUFFIX[path.suffix.lower()], path)
    if not first:
        raise NeofieldError(f"{root} holds no dataset: no images, sounds or videos, nor MNIST or CIFAR-10 files")
    if len(first) > 1:
        (a, pa), (b, pb) = list(first.items())[:2]
        raise NeofieldError(f"{root} mixes {KIND_NOUN[a]} and {KIND_NOUN[b]} ({pa.name}, {pb.name}): "
                            f"a dataset holds one kind of signal")
    return next(iter(first))


def _check_labelling(root: Path, parts: Sequence[_Listing]) -> list[str]:
    """The sorted class names over all parts; files outside class folders are refused when there are classes,
    since they would have no label."""
    classes = sorted({c for part in parts for c in part.classes if c is not None})
    if classes:
        for part in parts:
            for path, c in zip(part.files, part.classes):
                if c is None:
                    raise NeofieldError(f"{path} lies outside the class folders of {root}: put every file "
                                        f"in a class folder, or none")
    return classes


def _load_folder(root: Path, split: str, limit: int | None, size: tuple[int, int] | None) -> SignalSet:
    """Images, sounds or clips in a folder: flat (unlabelled) or one subfolder per class, split by
    ``train/`` and ``test/`` subfolders when the root holds both (anything else beside them is not
    read), else by the fixed rule."""
    own_split = (root / "train").is_dir() and (root / "test").is_dir()
    if own_split:
        parts = {name: _list_part(root, root / name) for name in ("train", "test")}
    else:
        parts = {"all": _list_part(root, root)}
    every = [p for part in parts.values() for p in part.files]
    kind = _folder_kind(root, every)
    classes = _check_labelling(root, list(parts.values()))

    if own_split:
        listing = _Listing.join([parts[name] for name in (("train", "test") if split == "all" else (split,))])
        index = np.arange(len(listing.files))
    else:
        listing = parts["all"]
        index = split_indices(len(listing.files), split)
    what = f"{KIND_NOUN[kind]} in {root}"
    _require_items(len(index), what, split)
    kept = _first(index, limit)
    files = [listing.files[i] for i in kept]
    if kind == "image":
        values, rate = _read_pictures(files, size), None
    elif kind == "audio":
        if size is not None:
            raise NeofieldError(f"a size applies to images and videos, not to the sounds in {root}")
        values, rate = _read_signals(files, kind, None)
    else:
        values, rate = _read_signals(files, kind, size)
    labels = None
    if classes:
        lookup = {c: i for i, c in enumerate(classes)}
        labels = np.array([lookup[listing.classes[i]] for i in kept], np.int64)
    return SignalSet(
        kind=kind,
        values=values,
        labels=labels,
        classes=tuple(classes),
        names=tuple(listing.names[i] for i in kept),
        rate=rate,
        source=_describe(what, split, len(kept), len(index)),
    )


def _read_pictures(files: Sequence[Path], size: tuple[int, int] | None) -> np.ndarray:
    """Pictures of one size as (N, H, W, C) uint8: C = 1 when all are grey, else 3 (grey ones promoted).
    Without ``size``, the first file whose size differs from the first one's is an error."""
    pictures: list[np.ndarray] = []
    for path in files:
        picture = _read_picture(path, size)
        if pictures and picture.shape[:2] != pictures[0].shape[:2]:
            (h, w), (h0, w0) = picture.shape[:2], pictures[0].shape[:2]
            raise NeofieldError(f"{path} is {w}x{h} pixels, but the images before it are {w0}x{h0} "
                                f"(first: {files[0].name}): give a size to resize them all")
        pictures.append(picture)
    if any(p.shape[2] == 3 for p in pictures):
        pictures = [np.repeat(p, 3, axis=2) if p.shape[2] == 1 else p for p in pictures]
    return np.stack(pictures)


def _read_picture(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """One picture as (H, W, 1) or (H, W, 3) uint8: grey stays grey, alpha is dropped, palettes and other
    colour modes become RGB, 16-bit grey is scaled to 8 bits, and a gif gives its first frame. The EXIF
    orientation is not applied: :func:`neofield.media.read_media` does not either, so a picture looks the
    same in a set as encoded alone."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.seek(0)
            picture = _eight_bit(image, path)
            return _resize_picture(picture, size or picture.size)
    except NeofieldError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad or unsupported files
        raise NeofieldError(f"{path} is not an image neofield can read ({_first_line(exc)})") from None


def _eight_bit(image, path: Path):
    """A Pillow image as mode L (grey) or RGB."""
    from PIL import Image

    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in ("1", "LA", "La"):
        return image.convert("L")
    if mode.startswith("I"):  # 16- or 32-bit integer grey (16-bit PNG and TIFF): scale 0..65535 to 0..255
        grey = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.round(np.clip(grey, 0, 65535) * (255 / 65535)).astype(np.uint8), "L")
    if mode == "F":
        raise NeofieldError(f"{path} holds floating-point pixels, which are not supported")
    return image.convert("RGB")  # RGBA, P, PA, CMYK, YCbCr, ...


def _read_signals(files: Sequence[Path], kind: str, size: tuple[int, int] | None) -> tuple[np.ndarray, float]:
    """Sounds as (N, S, C) float32, or clips as (N, F, H, W, 3) uint8 (a clip's sound track is dropped),
    all of one shape and rate; the first file that differs is named."""
    values: np.ndarray | None = None
    rate = 0.0
    for i, path in enumerate(files):
        signal, this_rate = _read_signal(path, kind, size)
        if values is None:
            values = np.empty((len(files), *signal.shape), signal.dtype)
            rate = this_rate
        else:
            _check_same(path, files[0], kind, signal.shape, values.shape[1:], this_rate, rate)
        values[i] = signal
    return values, rate


def _read_signal(path: Path, kind: str, size: tuple[int, int] | None) -> tuple[np.ndarray, float]:
    media: Media = read_media(path, Selection(resize=size))
    if kind == "audio":
        if media.audio is None:
            raise NeofieldError(f"{path} holds no sound")
        return media.audio, float(media.sample_rate)
    if media.video is None:
        raise NeofieldError(f"{path} holds no video")
    return media.video, float(media.fps)


def _check_same(path: Path, first: Path, kind: str, shape: tuple, expected: tuple, rate: float,
                expected_rate: float) -> None:
    """One line naming ``path`` when it differs from ``first``, the first item, in rate or shape."""
    difference = _difference(kind, shape, expected, rate, expected_rate)
    if difference is not None:
        what, got, want = difference
        raise NeofieldError(f"{path} has {what} {got}, but {first.name} has {want}: "
                            f"all {KIND_NOUN[kind]} of a dataset must be alike")


def _difference(kind: str, shape: tuple, expected: tuple, rate: float,
                expected_rate: float) -> tuple[str, str, str] | None:
    """The first way a sound (S, C) or clip (F, H, W, 3) differs from the expected one: (what, got, wanted)."""
    if not math.isclose(rate, expected_rate, rel_tol=1e-9):
        unit = "Hz" if kind == "audio" else "fps"
        return ("sample rate" if kind == "audio" else "frame rate"), f"{rate:g} {unit}", f"{expected_rate:g} {unit}"
    if kind == "audio":
        checks = [("channel count", shape[1], expected[1]),
                  ("length", f"{shape[0]:,} samples", f"{expected[0]:,} samples")]
    else:
        checks = [("size", f"{shape[2]}x{shape[1]}", f"{expected[2]}x{expected[1]}"),
                  ("frame count", f"{shape[0]:,} frames", f"{expected[0]:,} frames")]
    return next(((what, str(got), str(want)) for what, got, want in checks if got != want), None)


# ----------------------------------------------------------------------------------------------- helpers


def _parent_hint(path: Path) -> str:
    """For a single MNIST or CIFAR-10 file given by mistake, point at the folder that holds it."""
    known = {n for p in ("train", "t10k") for k in ("images", "labels") for n in _mnist_candidates(p, k)}
    if path.name in known or path.name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE):
        return f" (give the folder that holds it, {path.parent})"
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
