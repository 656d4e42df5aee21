"""neofield.sets.data: datasets of same-shaped signals, every fixture built here in tmp_path."""

from __future__ import annotations

import gzip
import struct
import sys
import tracemalloc
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from neofield.errors import NeofieldError
from neofield.media import write_video
from neofield.sets.data import CIFAR10_CLASSES, SPLITS, SignalSet, load_set, read_idx, split_indices

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------------------------ builders


def write_idx(path: Path, dims: tuple[int, ...], data: bytes, *, magic: int | None = None) -> Path:
    """An idx file of bytes: big-endian magic 0x000008nn, nn uint32 sizes, then ``data``; gzipped for .gz."""
    magic = (0x08 << 8) | len(dims) if magic is None else magic
    raw = struct.pack(f">I{len(dims)}I", magic, *dims) + data
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def make_mnist(root: Path, *, gz: bool = False, dot: bool = False, n_train: int = 6, n_test: int = 3) -> Path:
    """A tiny MNIST: 4x3 images whose every pixel is the item's index, labels = index % 10."""
    root.mkdir(parents=True, exist_ok=True)
    sep, ext = ("." if dot else "-"), (".gz" if gz else "")
    for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, 100)):
        pixels = np.repeat(np.arange(offset, offset + n, dtype=np.uint8), 12)
        write_idx(root / f"{prefix}-images{sep}idx3-ubyte{ext}", (n, 4, 3), pixels.tobytes())
        write_idx(root / f"{prefix}-labels{sep}idx1-ubyte{ext}", (n,), (np.arange(n) % 10).astype(np.uint8).tobytes())
    return root


def cifar_record(label: int, r: int, g: int, b: int, marker: int = 0) -> bytes:
    """One CIFAR-10 record: flat R, G and B planes, the R plane's pixel (row 0, col 1) set to ``marker``."""
    planes = np.array([r, g, b], np.uint8)[:, None].repeat(1024, axis=1)
    planes[0, 1] = marker
    return bytes([label]) + planes.tobytes()


def make_cifar(folder: Path, *, meta: tuple[str, ...] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data_batch_1.bin").write_bytes(cifar_record(3, 10, 20, 30, 99) + cifar_record(9, 1, 2, 3))
    (folder / "data_batch_2.bin").write_bytes(cifar_record(0, 4, 5, 6))
    (folder / "test_batch.bin").write_bytes(cifar_record(1, 7, 8, 9))
    if meta is not None:
        (folder / "batches.meta.txt").write_text("\n".join(meta) + "\n\n")
    return folder


def png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, array)
    return path


def rgb(h: int = 4, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def grey(h: int = 4, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def wav(path: Path, samples: int = 64, channels: int = 1, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, RNG.uniform(-0.5, 0.5, (samples, channels)).astype(np.float32), rate, subtype="FLOAT")
    return path


def errors(spec, match: str, **kwargs) -> None:
    with pytest.raises(NeofieldError, match=match) as info:
        load_set(spec, **kwargs)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------ the set


def test_subset_picks_items_and_keeps_all_classes():
    s = SignalSet("image", np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1), np.array([0, 1, 2, 1]),
                  ("a", "b", "c"), ("w", "x", "y", "z"))
    part = s.subset(np.array([3, 1]))
    assert part.names == ("z", "x") and part.labels.tolist() == [1, 1] and part.classes == ("a", "b", "c")
    assert part.values[:, 0, 0, 0].tolist() == [3, 1] and part.item_shape == (1, 1, 1)
    assert len(s.subset(slice(1, 3))) == 2 and s.subset(s.labels == 1).names == ("x", "z")


def test_subset_of_one_int_is_a_set_of_one():
    s = SignalSet("audio", np.zeros((3, 5, 2), np.float32), None, (), ("a", "b", "c"), rate=8000.0)
    one = s.subset(-1)
    assert len(one) == 1 and one.names == ("c",) and one.item_shape == (5, 2) and one.rate == 8000.0


def test_fixed_split_takes_every_fifth_item_for_test():
    assert split_indices(11, "test").tolist() == [0, 5, 10]
    assert split_indices(11, "train").tolist() == [1, 2, 3, 4, 6, 7, 8, 9]
    assert split_indices(11, "all").tolist() == list(range(11)) and SPLITS == ("train", "test", "all")


# ------------------------------------------------------------------------------------------------ digits


def test_digits_all_holds_1797_byte_images_with_labels():
    pytest.importorskip("sklearn")
    s = load_set("digits", "all")
    assert len(s) == 1797 and s.kind == "image" and s.item_shape == (8, 8, 1) and s.values.dtype == np.uint8
    assert s.values.min() == 0 and s.values.max() == 255 and s.rate is None
    assert s.classes == tuple("0123456789") and s.labels.dtype == np.int64 and set(s.labels) == set(range(10))
    assert s.names[17] == "digits/17"


def test_digits_splits_follow_the_every_fifth_rule():
    pytest.importorskip("sklearn")
    train, test = load_set("digits"), load_set("digits", "test")
    assert (len(train), len(test)) == (1437, 360) and not set(train.names) & set(test.names)
    assert test.names[:2] == ("digits/0", "digits/5") and train.source == "sklearn digits, train split (1,437)"


def test_digits_limit_and_size():
    pytest.importorskip("sklearn")
    s = load_set("digits", "test", limit=4, size=(16, 12))
    assert len(s) == 4 and s.item_shape == (12, 16, 1) and "first 4 of 360" in s.source


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    errors("digits", r"needs scikit-learn: pip install 'neofield\[sets\]'")


# ------------------------------------------------------------------------------------------------ MNIST


def test_mnist_reads_each_split_from_its_idx_files(tmp_path):
    root = make_mnist(tmp_path / "mnist")
    train, test = load_set(root), load_set(root, "test")
    assert train.item_shape == (4, 3, 1) and len(train) == 6 and len(test) == 3
    assert train.values[2].min() == train.values[2].max() == 2 and test.values[0, 0, 0, 0] == 100
    assert train.labels.tolist() == [0, 1, 2, 3, 4, 5] and test.names == tuple(f"mnist/t10k/{i}" for i in range(3))
    assert train.classes == tuple("0123456789")


def test_mnist_all_is_train_then_test_and_limit_keeps_the_first(tmp_path):
    root = make_mnist(tmp_path / "mnist")
    assert len(load_set(root, "all")) == 9
    assert load_set(root, "all", limit=7).names[-1] == "mnist/t10k/0"


@pytest.mark.parametrize("gz,dot", [(True, False), (False, True), (True, True)])
def test_mnist_reads_gzipped_files_and_the_dot_spelling(tmp_path, gz, dot):
    s = load_set(make_mnist(tmp_path / "m", gz=gz, dot=dot), "test")
    assert len(s) == 3 and s.values[2, 3, 2, 0] == 102


def test_mnist_bad_magic_is_refused(tmp_path):
    root = make_mnist(tmp_path / "m")
    write_idx(root / "train-images-idx3-ubyte", (6, 4, 3), bytes(72), magic=0x00000D03)
    errors(root, "not an idx file .*magic 0x00000d03")


def test_mnist_truncated_file_is_an_error(tmp_path):
    root = make_mnist(tmp_path / "m")
    write_idx(root / "train-images-idx3-ubyte", (6, 4, 3), bytes(70))
    errors(root, "more than the file can hold")


def test_mnist_truncated_gzip_is_an_error_not_a_short_read(tmp_path):
    root = make_mnist(tmp_path / "m", gz=True)
    write_idx(root / "train-images-idx3-ubyte.gz", (6, 4, 3), bytes(70))
    errors(root, "truncated: 70 of the 72 bytes")


def test_mnist_trailing_bytes_are_an_error(tmp_path):
    root = make_mnist(tmp_path / "m")
    write_idx(root / "t10k-labels-idx1-ubyte", (3,), bytes(4))
    errors(root, "longer than its header says", split="test")


def test_mnist_counts_must_agree(tmp_path):
    root = make_mnist(tmp_path / "m")
    write_idx(root / "train-labels-idx1-ubyte", (5,), bytes(5))
    errors(root, "6 images but train-labels-idx1-ubyte 5 labels")


def test_mnist_labels_must_be_digits(tmp_path):
    root = make_mnist(tmp_path / "m")
    write_idx(root / "train-labels-idx1-ubyte", (6,), bytes([0, 1, 2, 10, 4, 5]))
    errors(root, "label 10 is not a digit")


def test_mnist_missing_test_files_are_named(tmp_path):
    root = make_mnist(tmp_path / "m")
    (root / "t10k-images-idx3-ubyte").unlink()
    assert len(load_set(root)) == 6
    errors(root, "no t10k-images-idx3-ubyte", split="test")


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"])
def test_huge_idx_header_is_refused_without_allocating(tmp_path, name):
    path = write_idx(tmp_path / name, (0xFFFFFFFF, 28, 28), bytes(784 * 2))
    tracemalloc.start()
    try:
        with pytest.raises(NeofieldError, match="the header claims .* more than the file can hold"):
            read_idx(path, ndim=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_corrupt_gzip_is_one_line(tmp_path):
    root = make_mnist(tmp_path / "m", gz=True)
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    errors(root, "train-images-idx3-ubyte.gz cannot be read")


# ------------------------------------------------------------------------------------------------ CIFAR-10


def test_cifar_planes_land_as_red_green_blue(tmp_path):
    s = load_set(make_cifar(tmp_path / "c"))
    assert s.item_shape == (32, 32, 3) and s.values.dtype == np.uint8
    assert s.values[0, 5, 5].tolist() == [10, 20, 30] and s.values[0, 0, 1].tolist() == [99, 20, 30]
    assert s.values[0, 1, 0].tolist() == [10, 20, 30]  # row-major: pixel 1 is row 0, column 1


def test_cifar_splits_read_their_batches_in_order(tmp_path):
    folder = make_cifar(tmp_path / "c")
    train, test, every = (load_set(folder, split) for split in SPLITS)
    assert train.labels.tolist() == [3, 9, 0] and test.labels.tolist() == [1] and len(every) == 4
    assert train.names == ("cifar10/data_batch_1/0", "cifar10/data_batch_1/1", "cifar10/data_batch_2/0")
    assert test.values[0, 0, 0].tolist() == [7, 8, 9]


def test_cifar_class_names_come_from_the_meta_file_else_the_standard_ten(tmp_path):
    named = tuple(f"class{i}" for i in range(10))
    assert load_set(make_cifar(tmp_path / "a", meta=named)).classes == named
    assert load_set(make_cifar(tmp_path / "b")).classes == CIFAR10_CLASSES


def test_cifar_parent_of_the_batches_folder_is_accepted(tmp_path):
    make_cifar(tmp_path / "cifar-10-batches-bin")
    assert len(load_set(tmp_path, "test")) == 1


def test_cifar_batch_of_partial_records_is_refused(tmp_path):
    folder = make_cifar(tmp_path / "c")
    (folder / "test_batch.bin").write_bytes(cifar_record(1, 7, 8, 9)[:-5])
    errors(folder, "not a whole number of 3,073-byte records", split="test")


def test_cifar_label_past_the_classes_is_refused(tmp_path):
    folder = make_cifar(tmp_path / "c")
    (folder / "test_batch.bin").write_bytes(cifar_record(10, 7, 8, 9))
    errors(folder, "record 0 has label 10, but there are 10 classes", split="test")


@pytest.mark.parametrize("inside", [True, False])
def test_cifar_python_pickles_are_refused_naming_the_binary_distribution(tmp_path, inside):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x80\x04not unpickled")
    (folder / "batches.meta").write_bytes(b"\x80\x04")
    errors(tmp_path if inside else folder, "pickle.*binary distribution")


# ------------------------------------------------------------------------------------------------ image folders


def test_class_folders_give_sorted_classes_and_labels(tmp_path):
    for name in ("dog/b.png", "cat/a.png", "dog/a.png", "cat/b.png", "bird/x.png"):
        png(tmp_path / name, rgb())
    s = load_set(tmp_path, "all")
    assert s.classes == ("bird", "cat", "dog") and s.kind == "image" and s.item_shape == (4, 5, 3)
    assert s.names == ("bird/x.png", "cat/a.png", "cat/b.png", "dog/a.png", "dog/b.png")
    assert s.labels.tolist() == [0, 1, 1, 2, 2]
    assert load_set(tmp_path, "test").names == ("bird/x.png",) and len(load_set(tmp_path)) == 4


def test_flat_folder_is_unlabelled_and_pixels_are_exact(tmp_path):
    pictures = [rgb() for _ in range(3)]
    for i, p in enumerate(pictures):
        png(tmp_path / f"{i}.png", p)
    s = load_set(tmp_path, "all")
    assert s.labels is None and s.classes == () and np.array_equal(s.values, np.stack(pictures))


def test_grey_images_stay_one_channel(tmp_path):
    g = grey()
    png(tmp_path / "a.png", g)
    png(tmp_path / "b.png", grey())
    s = load_set(tmp_path, "all")
    assert s.item_shape == (4, 5, 1) and np.array_equal(s.values[0, ..., 0], g)


def test_rgba_and_palette_become_rgb(tmp_path):
    pixels = rgb()
    png(tmp_path / "a.png", np.dstack([pixels, np.full((4, 5), 7, np.uint8)]))
    Image.fromarray(pixels).quantize(8).save(tmp_path / "b.png")
    s = load_set(tmp_path, "all")
    assert s.item_shape == (4, 5, 3) and np.array_equal(s.values[0], pixels)


def test_grey_mixed_with_colour_is_promoted_to_rgb(tmp_path):
    g = grey()
    png(tmp_path / "a.png", g)
    png(tmp_path / "b.png", rgb())
    s = load_set(tmp_path, "all")
    assert s.item_shape == (4, 5, 3) and all(np.array_equal(s.values[0, ..., c], g) for c in range(3))


def test_size_mismatch_names_the_file_and_the_size_expected(tmp_path):
    png(tmp_path / "a.png", rgb())
    png(tmp_path / "b.png", rgb())
    png(tmp_path / "c.png", rgb(6, 5))
    errors(tmp_path, r"c\.png is 5x6 pixels, but the images before it are 5x4", split="all")


def test_size_resizes_every_image(tmp_path):
    png(tmp_path / "a.png", rgb())
    png(tmp_path / "b.png", rgb(9, 7))
    png(tmp_path / "c.png", np.full((8, 8, 3), 200, np.uint8))
    s = load_set(tmp_path, "all", size=(3, 2))
    assert s.item_shape == (2, 3, 3) and (s.values[2] == 200).all()


def test_train_and_test_folders_pick_the_split_with_the_union_of_classes(tmp_path):
    png(tmp_path / "train/cat/a.png", rgb())
    png(tmp_path / "train/dog/a.png", rgb())
    png(tmp_path / "test/eel/a.png", rgb())
    png(tmp_path / "test/dog/b.png", rgb())
    train, test = load_set(tmp_path), load_set(tmp_path, "test")
    assert train.classes == test.classes == ("cat", "dog", "eel")
    assert test.names == ("test/dog/b.png", "test/eel/a.png") and test.labels.tolist() == [1, 2]
    assert len(load_set(tmp_path, "all")) == 4


def test_hidden_and_non_media_files_are_skipped(tmp_path):
    png(tmp_path / "a.png", rgb())
    png(tmp_path / ".hidden.png", rgb(9, 9))
    png(tmp_path / ".cache/x.png", rgb(9, 9))
    (tmp_path / "README.txt").write_text("not a picture")
    assert load_set(tmp_path, "test").names == ("a.png",)


def test_gif_gives_its_first_frame(tmp_path):
    red, blue = (Image.new("RGB", (4, 3), c) for c in ((255, 0, 0), (0, 0, 255)))
    red.save(tmp_path / "a.gif", save_all=True, append_images=[blue])
    assert load_set(tmp_path, "test").values[0, 0, 0].tolist() == [255, 0, 0]


def test_limit_keeps_the_first_items_and_never_decodes_the_rest(tmp_path):
    for i in range(12):
        png(tmp_path / f"{i:02d}.png", rgb())
    (tmp_path / "99.png").write_bytes(b"broken")  # past the limit: never opened
    s = load_set(tmp_path, limit=2)
    assert s.names == ("01.png", "02.png") and "first 2 of 10" in s.source


def test_files_outside_class_folders_are_refused(tmp_path):
    png(tmp_path / "cat/a.png", rgb())
    png(tmp_path / "stray.png", rgb())
    errors(tmp_path, "stray.png lies outside the class folders")


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    errors(tmp_path, "bad.png is not an image", split="all")


def test_mixed_images_and_sounds_are_refused(tmp_path):
    png(tmp_path / "a.png", rgb())
    wav(tmp_path / "b.wav")
    errors(tmp_path, "mixes images and sounds")


# ------------------------------------------------------------------------------------------------ sounds, videos


def test_sound_folder_gives_samples_rate_and_labels(tmp_path):
    first = wav(tmp_path / "hi/a.wav", channels=2)
    wav(tmp_path / "lo/b.wav", channels=2)
    s = load_set(tmp_path, "all")
    assert s.kind == "audio" and s.values.shape == (2, 64, 2) and s.values.dtype == np.float32
    assert s.rate == 8000.0 and s.classes == ("hi", "lo") and s.labels.tolist() == [0, 1]
    assert np.allclose(s.values[0], sf.read(first, dtype="float32")[0])


@pytest.mark.parametrize("kwargs,phrase", [({"rate": 16000}, "sample rate 16000 Hz"),
                                           ({"channels": 2}, "channel count 2"),
                                           ({"samples": 50}, "length 50 samples")])
def test_sound_that_differs_is_named(tmp_path, kwargs, phrase):
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav", **kwargs)
    errors(tmp_path, f"b.wav has {phrase}, but a.wav has", split="all")


def test_size_is_refused_for_sounds(tmp_path):
    wav(tmp_path / "a.wav")
    errors(tmp_path, "size applies to images and videos", split="all", size=(4, 4))


def test_video_folder_gives_frames_and_fps(tmp_path):
    clips = [RNG.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8) for _ in range(2)]
    for i, clip in enumerate(clips):
        write_video(tmp_path / f"{i}.mp4", iter(clip), 10, lossless=True)
    s = load_set(tmp_path, "all")
    assert s.kind == "video" and s.values.shape == (2, 2, 8, 8, 3) and s.rate == 10.0
    assert np.array_equal(s.values[1], clips[1])


def test_video_of_another_length_is_named(tmp_path):
    write_video(tmp_path / "a.mp4", iter(np.zeros((2, 8, 8, 3), np.uint8)), 10, lossless=True)
    write_video(tmp_path / "b.mp4", iter(np.zeros((3, 8, 8, 3), np.uint8)), 10, lossless=True)
    errors(tmp_path, "b.mp4 has frame count 3 frames, but a.mp4 has 2", split="all")


# ------------------------------------------------------------------------------------------------ what is not a dataset


def test_missing_path_is_named(tmp_path):
    errors(tmp_path / "nowhere", "nowhere does not exist")


def test_empty_folder_holds_no_dataset(tmp_path):
    errors(tmp_path, "holds no dataset")


def test_single_file_is_not_a_dataset(tmp_path):
    errors(png(tmp_path / "a.png", rgb()), "is a file, not a dataset: a dataset is a folder, 'digits'")


def test_single_mnist_file_points_at_its_folder(tmp_path):
    root = make_mnist(tmp_path / "m")
    errors(root / "train-images-idx3-ubyte", "give the folder that holds it")


def test_unknown_split_is_refused(tmp_path):
    errors(tmp_path, "unknown split 'val'", split="val")


@pytest.mark.parametrize("limit", [0, -3])
def test_limit_below_one_is_refused(tmp_path, limit):
    errors(tmp_path, "limit must be a whole number >= 1", limit=limit)


def test_bad_size_is_refused(tmp_path):
    errors(tmp_path, "size '0x4' must be positive", size=(0, 4))


def test_empty_split_is_named(tmp_path):
    png(tmp_path / "a.png", rgb())
    errors(tmp_path, "the train split of images in .* is empty")
