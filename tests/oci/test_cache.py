"""The content-addressed cache of plugin executables, on a real directory per test.

Last use is a file's mtime, so ordering tests set mtimes explicitly rather than sleeping.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from solstice.oci.cache import EXECUTABLE, META, Cache, Entry, entry_key

DIGEST = "sha256:" + "ab" * 32
HEX = "ab" * 32


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    cache = Cache(tmp_path / "cache", max_bytes=1000)
    cache.prepare()
    return cache


def put(cache: Cache, key: str, content: bytes = b"exe", **meta: Any) -> Entry:
    """Commit an entry the way the puller does: `<workdir>/entry/plugin`, commit, drop the workdir."""
    workdir = cache.workdir()
    entry_dir = workdir / "entry"
    entry_dir.mkdir()
    (entry_dir / EXECUTABLE).write_bytes(content)
    fields = {"reference": f"oci://r.io/{key}", "digest": DIGEST, "size": len(content), **meta}
    try:
        return cache.commit(key, entry_dir, fields)
    finally:
        shutil.rmtree(workdir)


def set_last_used(cache: Cache, key: str, when: float) -> None:
    os.utime(cache.plugins / key / META, (when, when))


def tmp_contents(cache: Cache) -> list[str]:
    return sorted(path.name for path in cache.tmp.iterdir())


# --- keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "key"),
    [
        (None, HEX),
        ("", HEX),
        ("linux/amd64", f"{HEX}-linux-amd64"),
        ("linux/arm/v7", f"{HEX}-linux-arm-v7"),
    ],
)
def test_entry_key_is_the_digest_and_the_platform_of_an_index(platform: str | None, key: str) -> None:
    assert entry_key(DIGEST, platform) == key


# --- prepare and workdirs -----------------------------------------------------------------------


def test_prepare_creates_private_directories(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "deep" / "cache", max_bytes=1)
    cache.prepare()
    for directory in (cache.root, cache.plugins, cache.refs, cache.tmp):
        assert directory.is_dir()
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def dead_pid() -> int:
    """The pid of a process that has exited."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


def test_prepare_clears_every_kind_of_leftover_in_tmp(cache: Cache, tmp_path: Path) -> None:
    abandoned = cache.tmp / f"pull-{dead_pid()}-abc"
    abandoned.mkdir()
    (abandoned / "layer-0").write_bytes(b"half a download")
    (cache.tmp / "stray-file").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("must survive")
    (cache.tmp / "link-to-outside").symlink_to(outside)
    (cache.tmp / "dangling-link").symlink_to(tmp_path / "nowhere")
    cache.prepare()
    assert tmp_contents(cache) == []
    # A symlink is removed, never followed: what it pointed to is untouched.
    assert (outside / "keep").read_text() == "must survive"


def test_prepare_keeps_downloads_of_processes_still_running(cache: Cache) -> None:
    # A CLI sharing the cache with a server must not delete the server's download in progress.
    running = subprocess.Popen(["sleep", "30"])
    try:
        live = cache.tmp / f"pull-{running.pid}-xyz"
        live.mkdir()
        mine = cache.workdir()
        cache.prepare()
        assert live.is_dir() and mine.is_dir()
    finally:
        running.kill()
        running.wait()


def test_prepare_keeps_entries_and_remembered_tags(cache: Cache) -> None:
    put(cache, "k")
    cache.remember_tag("r.io/p:v1", DIGEST)
    Cache(cache.root, max_bytes=1000).prepare()
    assert cache.get("k") is not None
    assert cache.recall_tag("r.io/p:v1") is not None


def test_workdirs_are_fresh_and_inside_tmp(cache: Cache) -> None:
    first, second = cache.workdir(), cache.workdir()
    assert first != second
    assert first.parent == cache.tmp == second.parent
    assert first.is_dir() and not any(first.iterdir())


# --- commit and get ------------------------------------------------------------------------------


def test_commit_moves_the_workdir_into_place(cache: Cache) -> None:
    workdir = cache.workdir() / "entry"
    workdir.mkdir()
    (workdir / EXECUTABLE).write_bytes(b"binary")
    before = time.time()
    entry = cache.commit("k", workdir, {"reference": "oci://r.io/p:v1", "digest": DIGEST, "size": 6})
    assert entry.key == "k"
    assert entry.path == cache.plugins / "k" / EXECUTABLE
    assert entry.path.read_bytes() == b"binary"
    assert (entry.reference, entry.digest, entry.size) == ("oci://r.io/p:v1", DIGEST, 6)
    assert entry.pulled_at >= before
    assert not workdir.exists()  # renamed, not copied


def test_get_returns_what_commit_wrote(cache: Cache) -> None:
    committed = put(
        cache,
        "k",
        b"binary",
        manifest_digest="sha256:" + "cd" * 32,
        platform="linux/arm64",
        verified_key="key-id",
    )
    got = cache.get("k")
    assert got is not None
    assert got == Entry(**{**committed.__dict__, "last_used": got.last_used})
    assert (got.manifest_digest, got.platform, got.verified_key) == (
        "sha256:" + "cd" * 32,
        "linux/arm64",
        "key-id",
    )


def test_get_of_an_absent_key_is_none(cache: Cache) -> None:
    assert cache.get("nothing") is None


def test_get_marks_the_entry_used(cache: Cache) -> None:
    put(cache, "k")
    set_last_used(cache, "k", 1_000_000)
    entry = cache.get("k")
    assert entry is not None
    assert entry.last_used > time.time() - 60


def test_meta_written_by_commit_is_json_on_disk(cache: Cache) -> None:
    put(cache, "k", extra="kept")
    meta = json.loads((cache.plugins / "k" / META).read_text())
    assert meta["extra"] == "kept"
    assert "pulled_at" in meta


def test_as_dict_is_json_friendly(cache: Cache) -> None:
    entry = put(cache, "k")
    data = json.loads(json.dumps(entry.as_dict()))
    assert data["path"] == str(entry.path)
    assert data["key"] == "k"


@pytest.mark.parametrize(
    "damage",
    [
        "no-executable",
        "no-meta",
        "meta-not-json",
        "meta-a-list",
        "meta-null",
        "meta-bad-size",
        "executable-a-directory",
    ],
)
def test_get_of_a_damaged_entry_is_none(cache: Cache, damage: str) -> None:
    put(cache, "k")
    directory = cache.plugins / "k"
    match damage:
        case "no-executable":
            (directory / EXECUTABLE).unlink()
        case "no-meta":
            (directory / META).unlink()
        case "meta-not-json":
            (directory / META).write_text("{half")
        case "meta-a-list":
            (directory / META).write_text("[]")
        case "meta-null":
            (directory / META).write_text("null")
        case "meta-bad-size":
            (directory / META).write_text('{"size": "large"}')
        case "executable-a-directory":
            (directory / EXECUTABLE).unlink()
            (directory / EXECUTABLE).mkdir()
    assert cache.get("k") is None


# --- concurrent and repeated commits ------------------------------------------------------------


def test_second_commit_of_the_same_key_keeps_the_first(cache: Cache) -> None:
    first = put(cache, "k", b"first")
    loser = cache.workdir()
    entry_dir = loser / "entry"
    entry_dir.mkdir()
    (entry_dir / EXECUTABLE).write_bytes(b"second")
    entry = cache.commit("k", entry_dir, {"size": 6})
    # Same digest means same content in practice; the winner's entry is what everyone gets.
    assert entry.path == first.path
    assert entry.path.read_bytes() == b"first"
    assert not entry_dir.exists()


def test_concurrent_commits_of_the_same_key_all_succeed_with_one_winner(cache: Cache) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[Entry] = []
    errors: list[BaseException] = []
    workdirs = []
    for number in range(workers):
        entry_dir = cache.workdir() / "entry"
        entry_dir.mkdir()
        (entry_dir / EXECUTABLE).write_bytes(f"writer-{number}".encode())
        workdirs.append(entry_dir)

    def commit(entry_dir: Path) -> None:
        barrier.wait()
        try:
            results.append(cache.commit("k", entry_dir, {"size": 8}))
        except BaseException as exc:  # collected, so the assertion shows it
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(w,)) for w in workdirs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    contents = {entry.path.read_bytes() for entry in results}
    assert len(results) == workers and len(contents) == 1
    assert not any(w.exists() for w in workdirs)
    assert [p.name for p in cache.plugins.iterdir()] == ["k"]


def test_commit_replaces_a_damaged_entry(cache: Cache) -> None:
    # An entry whose executable was lost used to block every later pull of that digest.
    put(cache, "k", b"old")
    (cache.plugins / "k" / EXECUTABLE).unlink()
    entry = put(cache, "k", b"new")
    assert entry.path.read_bytes() == b"new"
    assert cache.get("k") is not None


def test_commit_leaves_no_temporary_files(cache: Cache) -> None:
    put(cache, "k")
    cache.update_meta("k", verified_key="x")
    assert sorted(p.name for p in (cache.plugins / "k").iterdir()) == sorted([EXECUTABLE, META])


# --- update_meta --------------------------------------------------------------------------------


def test_update_meta_merges_and_keeps_the_rest(cache: Cache) -> None:
    put(cache, "k", b"exe", platform="linux/amd64")
    cache.update_meta("k", verified_key="key-1")
    entry = cache.get("k")
    assert entry is not None
    assert (entry.verified_key, entry.platform, entry.size) == ("key-1", "linux/amd64", 3)


def test_update_meta_of_an_absent_entry_raises(cache: Cache) -> None:
    with pytest.raises(OSError):
        cache.update_meta("nothing", verified_key="x")


# --- entries: complete ones, least recently used first ------------------------------------------


def test_entries_are_least_recently_used_first(cache: Cache) -> None:
    for key, when in (("b", 3000), ("a", 1000), ("c", 2000)):
        put(cache, key)
        set_last_used(cache, key, when)
    assert [entry.key for entry in cache.entries()] == ["a", "c", "b"]
    assert [entry.last_used for entry in cache.entries()] == [1000, 2000, 3000]


def test_get_moves_an_entry_to_the_end(cache: Cache) -> None:
    for key, when in (("a", 1000), ("b", 2000)):
        put(cache, key)
        set_last_used(cache, key, when)
    cache.get("a")
    assert [entry.key for entry in cache.entries()] == ["b", "a"]


def test_entries_ignore_damaged_dirs_and_stray_files(cache: Cache) -> None:
    put(cache, "good")
    (cache.plugins / "no-meta").mkdir()
    (cache.plugins / "bad-json").mkdir()
    (cache.plugins / "bad-json" / META).write_text("{")
    (cache.plugins / "a-list").mkdir()
    (cache.plugins / "a-list" / META).write_text("[1, 2]")
    (cache.plugins / "bad-size").mkdir()
    (cache.plugins / "bad-size" / META).write_text('{"size": null}')
    (cache.plugins / "stray-file").write_text("x")
    assert [entry.key for entry in cache.entries()] == ["good"]


def test_entries_of_an_unprepared_cache_are_empty(tmp_path: Path) -> None:
    assert Cache(tmp_path / "never-prepared", max_bytes=1).entries() == []


# --- remove and evict ---------------------------------------------------------------------------


def test_remove_deletes_the_entry_and_leaves_nothing_behind(cache: Cache) -> None:
    put(cache, "k")
    cache.remove("k")
    assert cache.get("k") is None
    assert not (cache.plugins / "k").exists()
    assert tmp_contents(cache) == []


def test_remove_of_an_absent_entry_is_quiet(cache: Cache) -> None:
    cache.remove("nothing")
    assert tmp_contents(cache) == []


def test_remove_does_not_touch_other_entries(cache: Cache) -> None:
    put(cache, "a")
    put(cache, "b")
    cache.remove("a")
    assert [entry.key for entry in cache.entries()] == ["b"]


def _fill(cache: Cache, sizes: dict[str, int]) -> None:
    """Entries of the given sizes, used in the order given (the first is the oldest)."""
    for number, (key, size) in enumerate(sizes.items()):
        put(cache, key, b"x" * size)
        set_last_used(cache, key, 1000 + number)


def _evictions() -> float:
    return REGISTRY.get_sample_value("solstice_oci_cache_evictions_total") or 0.0


def test_evict_removes_least_recently_used_until_under_the_bound(cache: Cache) -> None:
    _fill(cache, {"old": 400, "mid": 400, "new": 400})  # 1200 > 1000
    counted = _evictions()
    removed = cache.evict(pinned=())
    assert [entry.key for entry in removed] == ["old"]
    assert [entry.key for entry in cache.entries()] == ["mid", "new"]
    assert _evictions() == counted + 1


def test_evict_does_nothing_under_the_bound(cache: Cache) -> None:
    _fill(cache, {"a": 500, "b": 500})  # exactly 1000: fits
    assert cache.evict(pinned=()) == []
    assert len(cache.entries()) == 2


def test_evict_never_removes_pinned_entries(cache: Cache) -> None:
    _fill(cache, {"old-pinned": 600, "mid": 300, "new": 300})
    removed = cache.evict(pinned={"old-pinned"})
    # The oldest is pinned, so the next oldest goes instead.
    assert [entry.key for entry in removed] == ["mid"]
    assert {entry.key for entry in cache.entries()} == {"old-pinned", "new"}


def test_evict_stays_over_the_bound_rather_than_remove_pinned(cache: Cache) -> None:
    _fill(cache, {"a": 800, "b": 800, "c": 100})
    removed = cache.evict(pinned={"a", "b"})
    assert [entry.key for entry in removed] == ["c"]
    assert {entry.key for entry in cache.entries()} == {"a", "b"}


def test_evict_with_an_explicit_bound(cache: Cache) -> None:
    _fill(cache, {"a": 10, "b": 10, "c": 10})
    removed = cache.evict(pinned={"b"}, max_bytes=0)
    assert [entry.key for entry in removed] == ["a", "c"]
    assert [entry.key for entry in cache.entries()] == ["b"]


def test_evicted_entries_are_gone_from_disk(cache: Cache) -> None:
    _fill(cache, {"a": 900, "b": 900})
    cache.evict(pinned=())
    assert not (cache.plugins / "a").exists()
    assert cache.get("a") is None
    assert tmp_contents(cache) == []


# --- tags remembered for offline use --------------------------------------------------------------


def test_remember_and_recall_a_tag(cache: Cache) -> None:
    before = time.time()
    cache.remember_tag("r.io/p:v1", DIGEST)
    recalled = cache.recall_tag("r.io/p:v1")
    assert recalled is not None
    digest, when = recalled
    assert digest == DIGEST
    assert before <= when <= time.time()


def test_recall_of_an_unknown_tag_is_none(cache: Cache) -> None:
    assert cache.recall_tag("r.io/p:never") is None


def test_a_later_resolution_replaces_the_earlier(cache: Cache) -> None:
    cache.remember_tag("r.io/p:v1", DIGEST)
    cache.remember_tag("r.io/p:v1", "sha256:" + "ee" * 32)
    assert cache.recall_tag("r.io/p:v1") == ("sha256:" + "ee" * 32, pytest.approx(time.time(), abs=60))


def test_tags_do_not_collide(cache: Cache) -> None:
    cache.remember_tag("r.io/p:v1", DIGEST)
    cache.remember_tag("r.io/p:v2", "sha256:" + "ee" * 32)
    cache.remember_tag("other.io/p:v1", "sha256:" + "ff" * 32)
    assert [cache.recall_tag(t)[0] for t in ("r.io/p:v1", "r.io/p:v2", "other.io/p:v1")] == [  # type: ignore[index]
        DIGEST,
        "sha256:" + "ee" * 32,
        "sha256:" + "ff" * 32,
    ]


def test_remembered_tags_survive_a_restart(cache: Cache) -> None:
    cache.remember_tag("r.io/p:v1", DIGEST)
    restarted = Cache(cache.root, max_bytes=1000)
    restarted.prepare()
    recalled = restarted.recall_tag("r.io/p:v1")
    assert recalled is not None and recalled[0] == DIGEST


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        "null",
        '{"digest": "x"}',
        '{"digest": "x", "at": "yesterday"}',
        '{"digest": "x", "at": null}',
    ],
)
def test_a_damaged_tag_record_is_forgotten(cache: Cache, text: str) -> None:
    cache.remember_tag("r.io/p:v1", DIGEST)
    (record,) = cache.refs.iterdir()
    record.write_text(text)
    assert cache.recall_tag("r.io/p:v1") is None


def test_tag_records_leave_no_temporary_files(cache: Cache) -> None:
    for number in range(5):
        cache.remember_tag(f"r.io/p:v{number}", DIGEST)
    assert all(path.suffix == ".json" and not path.name.startswith(".tmp-") for path in cache.refs.iterdir())
    assert len(list(cache.refs.iterdir())) == 5
