"""`prepare`: every source layout and archive type, URLs with resume, deterministic sampling, and
unusable files skipped with a reason — all on real photos from ../shared."""

from __future__ import annotations

import csv
import hashlib
import http.server
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from catdog import CLASS_NAMES
from catdog.data import RESERVED_PER_CLASS, prepare, read_manifest, reserved_photos
from catdog.download import DownloadError, download
from catdog.sources import DataError, label_for

PER_CLASS = 6


@pytest.fixture(scope="module")
def few(cat_photos, dog_photos) -> dict[str, list[Path]]:
    """Ten photos of each class that prepare may pick (none of the reserved ones)."""
    reserved = set(reserved_photos().values())
    return {
        label: [p for p in photos if f"{label}/{p.name}" not in reserved][:10]
        for label, photos in (("cat", cat_photos), ("dog", dog_photos))
    }


def layout(root: Path, few: dict[str, list[Path]], style: str) -> Path:
    """The same photos arranged as each supported source layout."""
    for label, photos in few.items():
        for number, photo in enumerate(photos, 1):
            if style == "lower":
                target = root / label / photo.name
            elif style == "petimages":  # Microsoft's archive: PetImages/Cat/1.jpg
                target = root / "PetImages" / label.capitalize() / f"{number}.jpg"
            elif style == "kaggle":  # Kaggle's train/: cat.1.jpg, dog.1.jpg side by side
                target = root / "train" / f"{label}.{number}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
    return root


def kept_sources(out: Path) -> list[tuple[str, str, str]]:
    return sorted((row["split"], row["class"], row["sha256"]) for row in read_manifest(out))


@pytest.mark.parametrize(
    "name, label",
    [
        ("train/cat/1.jpg", "cat"),
        ("PetImages/Dog/12.jpg", "dog"),
        ("cats/x.png", "cat"),
        ("train/dog.77.jpg", "dog"),
        ("cat_01.jpeg", "cat"),
        ("catalogue/1.jpg", None),
        ("x/1.jpg", None),
        ("dog/cat.1.jpg", "dog"),  # the folder wins over the name
    ],
)
def test_class_comes_from_the_folder_or_the_file_name(name, label):
    assert label_for(name) == label


@pytest.mark.parametrize("style", ["lower", "petimages", "kaggle"])
def test_each_folder_layout_gives_the_lab_layout(style, few, tmp_path):
    source = layout(tmp_path / "src", few, style)
    out = tmp_path / "data"
    report = prepare(str(source), out, PER_CLASS, cache_dir=tmp_path / "cache", progress=False)
    for split, count in (("training", 5), ("validation", 1)):
        for label in ("cat", "dog"):
            files = list((out / split / label).iterdir())
            assert len(files) == count, (split, label)
            assert report.counts[split, label] == count
    rows = read_manifest(out)
    assert len(rows) == 2 * PER_CLASS
    for row in rows:
        data = (out / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert Image.open(out / row["file"]).size == (int(row["width"]), int(row["height"]))
        assert row["file"].startswith(f"{row['split']}/{row['class']}/")
    # The class was read right: every kept cat is one of the cat photos.
    cat_hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in few["cat"]}
    assert {row["sha256"] for row in rows if row["class"] == "cat"} <= cat_hashes


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tar.xz"])
def test_archives_give_the_same_sample_as_the_folder(kind, few, tmp_path):
    source = layout(tmp_path / "src", few, "petimages")
    archive = tmp_path / f"photos.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as out:
            for path in sorted(source.rglob("*.jpg")):
                out.write(path, path.relative_to(source).as_posix())
    else:
        with tarfile.open(archive, "w:" + (kind.split(".")[1] if "." in kind else "")) as out:
            out.add(source / "PetImages", "PetImages")
    from_folder = prepare(str(source), tmp_path / "a", PER_CLASS, cache_dir=tmp_path / "cache", progress=False)
    from_archive = prepare(str(archive), tmp_path / "b", PER_CLASS, cache_dir=tmp_path / "cache", progress=False)
    assert from_archive.counts == from_folder.counts
    assert kept_sources(tmp_path / "a") == kept_sources(tmp_path / "b")


def test_sampling_is_deterministic_for_a_seed(kaggle_dev, tmp_path):
    def sample(seed: int, name: str) -> list[tuple[str, str, str]]:
        prepare(str(kaggle_dev), tmp_path / name, 8, seed=seed, cache_dir=tmp_path / "cache", progress=False)
        return kept_sources(tmp_path / name)

    assert sample(1, "one") == sample(1, "again")
    assert sample(1, "one") != sample(2, "other")


def test_unusable_and_duplicate_files_are_skipped_with_reasons(few, tmp_path):
    source = layout(tmp_path / "src", few, "petimages")
    cats = source / "PetImages" / "Cat"
    # What Microsoft's archive is known to hold: empty files, files that are not JPEGs, cut-off files.
    (cats / "666.jpg").write_bytes(b"")
    (cats / "667.jpg").write_bytes(b"GIF89a but not really")
    (cats / "668.jpg").write_bytes(few["cat"][0].read_bytes()[:3000])
    shutil.copyfile(few["cat"][1], cats / "669.jpg")  # the same photo twice
    Image.new("RGB", (20, 20)).save(cats / "670.jpg")  # a thumbnail too small to learn from
    (cats / "Thumbs.db").write_bytes(b"\x00" * 100)  # not an image file name at all: ignored
    out = tmp_path / "data"
    report = prepare(str(source), out, 15, cache_dir=tmp_path / "cache", progress=False)
    # 15 cat files, 5 unusable: asking for 15 visits them all; the 10 good ones are kept.
    assert report.counts["training", "cat"] + report.counts["validation", "cat"] == 10
    assert report.skipped == {"empty": 1, "corrupt": 1, "truncated": 1, "duplicate": 1, "too-small": 1}
    with open(out / "skipped.csv") as stream:
        skipped = {row["source"]: row for row in csv.DictReader(stream)}
    assert skipped["PetImages/Cat/666.jpg"]["reason"] == "empty"
    assert skipped["PetImages/Cat/668.jpg"]["reason"] == "truncated"
    assert report.short_classes["cat"] == 10
    assert "skipped" in report.summary() and "5 unusable" in report.summary()
    assert (cats / "666.jpg").exists()  # the source is never modified


def test_excluded_photos_are_never_picked(kaggle_dev, tmp_path):
    prepare(str(kaggle_dev), tmp_path / "train", 8, cache_dir=tmp_path / "cache", progress=False)
    used = {row["sha256"] for row in read_manifest(tmp_path / "train")}
    report = prepare(str(kaggle_dev), tmp_path / "eval", 8, cache_dir=tmp_path / "cache", progress=False, exclude=used)
    assert not used & {row["sha256"] for row in read_manifest(tmp_path / "eval")}
    assert report.skipped["seen"] == 16  # the same seed walks the same photos first


def test_the_reserved_photos_are_fixed_by_name_and_match_the_kaggle_set(kaggle_dev):
    """Each class's first 250 file names in the order of their sha256: a rule anyone can recompute, so
    no one can move a hard photo out of the scored set."""
    reserved = reserved_photos()
    assert len(reserved) == RESERVED_PER_CLASS * len(CLASS_NAMES)
    for label in CLASS_NAMES:
        names = sorted(
            (p.name for p in (kaggle_dev / label).glob("*.jpg")), key=lambda n: hashlib.sha256(n.encode()).hexdigest()
        )
        assert sorted(f for f in reserved.values() if f.startswith(f"{label}/")) == sorted(
            f"{label}/{name}" for name in names[:RESERVED_PER_CLASS]
        )
    assert {
        hashlib.sha256((kaggle_dev / file).read_bytes()).hexdigest(): file for file in reserved.values()
    } == reserved


def test_no_sample_to_train_on_holds_a_reserved_photo_even_renamed(kaggle_dev, tmp_path):
    """Training photos come only through prepare; a reserved photo under Microsoft's numbering is still
    known by its bytes, and --reserved gives exactly the reserved photos, to score on."""
    reserved = reserved_photos()
    source = tmp_path / "PetImages"
    for label in CLASS_NAMES:
        photos = sorted((kaggle_dev / label).glob("*.jpg"))
        mine = [p for p in photos if f"{label}/{p.name}" in reserved.values()][:6]
        others = [p for p in photos if f"{label}/{p.name}" not in reserved.values()][:6]
        for number, photo in enumerate(mine + others, 1):
            (source / label.capitalize()).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, source / label.capitalize() / f"{number}.jpg")
    report = prepare(str(source), tmp_path / "train", 12, cache_dir=tmp_path / "cache", progress=False)
    assert not {row["sha256"] for row in read_manifest(tmp_path / "train")} & set(reserved)
    assert report.skipped["reserved"] == 12 and report.short_classes == {"cat": 6, "dog": 6}

    unseen = prepare(
        str(kaggle_dev), tmp_path / "unseen", 1000, cache_dir=tmp_path / "cache", progress=False, reserved=True
    )
    assert {row["sha256"] for row in read_manifest(tmp_path / "unseen")} == set(reserved)
    assert sum(unseen.counts.values()) == len(reserved)


def test_a_class_with_too_few_images_is_reported(few, tmp_path):
    source = layout(tmp_path / "src", few, "lower")
    report = prepare(str(source), tmp_path / "data", 15, cache_dir=tmp_path / "cache", progress=False)
    assert report.short_classes == {"cat": 10, "dog": 10}
    assert "only 10 usable cat images" in report.summary()


def test_source_without_cats_or_dogs_is_a_clear_error(tmp_path):
    (tmp_path / "src" / "birds").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(tmp_path / "src" / "birds" / "1.jpg")
    with pytest.raises(DataError, match="no cat or dog images"):
        prepare(str(tmp_path / "src"), tmp_path / "data", 4, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(DataError, match="does not exist"):
        prepare(str(tmp_path / "nowhere"), tmp_path / "data", 4, cache_dir=tmp_path / "cache", progress=False)


def test_a_failed_prepare_leaves_the_previous_data_untouched(few, tmp_path):
    source = layout(tmp_path / "src", few, "lower")
    out = tmp_path / "data"
    prepare(str(source), out, PER_CLASS, cache_dir=tmp_path / "cache", progress=False)
    before = kept_sources(out)
    with pytest.raises(DataError):
        prepare(str(tmp_path / "nowhere"), out, PER_CLASS, cache_dir=tmp_path / "cache", progress=False)
    assert kept_sources(out) == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no staging left behind


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files as web servers do: an ETag, Range requests honoured only while If-Range still names
    the file's current ETag (else the whole file); can be told to cut the first transfer short."""

    cut_after: int | None = None
    ranges_seen: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        start = 0
        header = self.headers.get("Range")
        if header and self.headers.get("If-Range", etag) == etag:
            type(self).ranges_seen.append(header)
            start = int(header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if type(self).cut_after is not None:
            body, type(self).cut_after = body[: type(self).cut_after], None
        self.wfile.write(body)
        self.close_connection = True


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    RangeHandler.cut_after, RangeHandler.ranges_seen = None, []
    handler = lambda *args, **kwargs: RangeHandler(*args, directory=str(root), **kwargs)  # noqa: E731 - the handler factory http.server wants
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def make_zip(few: dict[str, list[Path]], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for label, photos in few.items():
            for number, photo in enumerate(photos, 1):
                archive.write(photo, f"PetImages/{label.capitalize()}/{number}.jpg")
    return path


def test_prepare_from_a_url_downloads_the_archive_once(server, few, tmp_path):
    root, base = server
    make_zip(few, root / "kagglecatsanddogs.zip")
    cache = tmp_path / "cache"
    report = prepare(f"{base}/kagglecatsanddogs.zip", tmp_path / "data", PER_CLASS, cache_dir=cache, progress=False)
    assert report.counts["training", "dog"] == 5
    assert [p.name for p in cache.iterdir()] == ["kagglecatsanddogs.zip"]
    (root / "kagglecatsanddogs.zip").unlink()  # a second run needs no network
    prepare(f"{base}/kagglecatsanddogs.zip", tmp_path / "again", PER_CLASS, cache_dir=cache, progress=False)
    assert kept_sources(tmp_path / "again") == kept_sources(tmp_path / "data")


def test_a_broken_download_resumes_where_it_stopped(server, few, tmp_path):
    root, base = server
    archive = make_zip(few, root / "photos.zip")
    expected = hashlib.sha256(archive.read_bytes()).hexdigest()
    RangeHandler.cut_after = archive.stat().st_size // 3
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(f"{base}/photos.zip", cache, sha256=expected, progress=False)
    assert not (cache / "photos.zip").exists()  # nothing half-written under the real name
    assert (cache / "photos.zip.part").stat().st_size == archive.stat().st_size // 3
    path = download(f"{base}/photos.zip", cache, sha256=expected, progress=False)
    assert RangeHandler.ranges_seen == [f"bytes={archive.stat().st_size // 3}-"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
    assert not (cache / "photos.zip.part").exists()


def test_a_file_that_changed_on_the_server_starts_over_instead_of_being_spliced(server, few, tmp_path):
    """PetImages has no published hash: a resume must not glue the start of one file to another's end."""
    root, base = server
    archive = make_zip(few, root / "photos.zip")
    RangeHandler.cut_after = archive.stat().st_size // 2
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="resume"):
        download(f"{base}/photos.zip", cache, progress=False)
    archive.write_bytes(b"a newer archive" + archive.read_bytes()[::-1])  # replaced upstream meanwhile
    path = download(f"{base}/photos.zip", cache, progress=False)
    assert path.read_bytes() == archive.read_bytes()
    assert RangeHandler.ranges_seen == []  # asked with If-Range: the server sent the whole new file
    assert sorted(p.name for p in cache.iterdir()) == ["photos.zip"]


def test_a_download_with_the_wrong_hash_is_deleted(server, few, tmp_path):
    root, base = server
    make_zip(few, root / "photos.zip")
    with pytest.raises(DownloadError, match="expected 0000"):
        download(f"{base}/photos.zip", tmp_path / "cache", sha256="0" * 64, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_url_and_unreachable_host_are_clear_errors(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base}/nothing.zip", tmp_path / "cache", progress=False)
    with pytest.raises(DownloadError, match="cannot reach"):
        download("http://127.0.0.1:9/photos.zip", tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_zip_bomb_in_the_source_is_refused_without_being_expanded(ocp_lab, tmp_path):
    """An archive member declaring or expanding to 512 MB (a few hundred KB compressed) is read only up to
    the size limit and skipped as too large: `data prepare` stays small (measured in its own process)."""
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        with bundle.open("cat/bomb.jpg", "w", force_zip64=True) as member:
            block = b"\0" * (16 * 2**20)
            for _ in range(32):
                member.write(block)
        for label in ("cat", "dog"):
            for photo in sorted((ocp_lab / "training" / label).glob("*.jpg"))[:4]:
                bundle.write(photo, f"{label}/{photo.name}")
    assert archive.stat().st_size < 5 * 2**20
    # VmHWM, the peak of this process's own memory (ru_maxrss would carry the forking test runner's peak).
    script = (
        "import re, sys; from pathlib import Path; from catdog.data import prepare; "
        "report = prepare(sys.argv[1], Path(sys.argv[2]), 5, progress=False, cache_dir=Path(sys.argv[2]) / 'cache'); "
        "peak = re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1); "
        "print(int(peak) // 1024, dict(report.skipped))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(archive), str(tmp_path / "out")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    peak_mib, skipped = result.stdout.split(" ", 1)
    assert "too-large" in skipped, result.stdout
    assert int(peak_mib) < 300, f"peak {peak_mib} MiB: the member was expanded"
