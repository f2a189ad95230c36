"""The folder source on real files: formats, identity, and every bad input it must survive."""

from __future__ import annotations

import logging
import os
import resource
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from monitor.documents import parse_document
from monitor.errors import DocumentError
from monitor.matching.loader import RuleSet
from monitor.matching.rules import Actor, Rule
from monitor.models import Severity
from monitor.pipeline import CompiledRules, Pipeline
from monitor.settings import FolderSourceSettings
from monitor.sources.folder import _RETRY, FolderSource
from monitor.sources.parsing import DocumentPool
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, FileRow, MatchRow

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_b84c25b2169af3e7.txt"
TOKAYEV = Actor(id="tokayev", name="Tokayev", aliases=("Tokayev", "Токаев"))
RULES = (
    Rule(
        id="kz-lethal-force",
        name="Lethal force",
        severity=Severity.CRITICAL,
        actors=(TOKAYEV,),
        keywords=("shoot without warning", "открывать огонь без предупреждения"),
    ),
)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'monitor.db'}")
    database.upgrade()
    yield database  # type: ignore[misc]
    database.dispose()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def source(
    db: Database, folder: Path, parsers: DocumentPool | None = None, **settings: object
) -> FolderSource:
    config = FolderSourceSettings(id="inbox", type="folder", path=folder, **settings)  # type: ignore[arg-type]
    return FolderSource(
        config,
        Pipeline(db, CompiledRules.build(RuleSet(rules=RULES)), ("console",)),
        parsers=parsers,
    )


def matched_locations(db: Database) -> list[str]:
    with db.session() as session:
        rows = session.exec(select(MatchRow, ArticleRow).join(ArticleRow)).all()
    return sorted(article.location or "" for _match, article in rows)


def test_sample_article_is_read_and_matches(db: Database, folder: Path) -> None:
    """The customer's sample, its section label kept as a tag, matches the lethal-force rule."""
    shutil.copy(SEED, folder / SEED.name)
    result = source(db, folder).scan()
    assert (result.new, len(result.match_ids)) == (1, 1)
    with db.session() as session:
        article = session.exec(select(ArticleRow)).one()
    assert article.title == "Kazakhstan orders to shoot protesters without warning"
    assert article.tags == ["Politics"]
    assert article.key == SEED.name


def test_files_are_found_recursively_and_unchanged_files_are_not_read_again(
    db: Database, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subfolders are scanned; a second scan reads nothing when no file changed."""
    (folder / "a" / "b").mkdir(parents=True)
    shutil.copy(SEED, folder / "a" / "b" / "seed.txt")
    watched = source(db, folder)
    assert watched.scan().new == 1
    reads: list[str] = []
    import monitor.sources.folder as module

    original = module.parse_document
    monkeypatch.setattr(module, "parse_document", lambda n, d: reads.append(n) or original(n, d))
    assert watched.scan().new == 0
    assert reads == []


def test_a_copy_of_a_file_is_not_alerted_again(db: Database, folder: Path) -> None:
    """The same content under another name is a duplicate: stored once, alerted once."""
    shutil.copy(SEED, folder / "one.txt")
    shutil.copy(SEED, folder / "two.txt")
    result = source(db, folder).scan()
    assert (result.new, result.duplicates, len(result.match_ids)) == (1, 1, 1)


def test_a_changed_file_is_rematched_without_alerting_the_same_rule_again(
    db: Database, folder: Path
) -> None:
    """Editing a file updates its article; the rule that already alerted does not alert again."""
    target = folder / "seed.txt"
    shutil.copy(SEED, target)
    watched = source(db, folder)
    watched.scan()
    target.write_text(
        SEED.read_text(encoding="utf-8") + "\nUpdate: more shooting.\n", encoding="utf-8"
    )
    result = watched.scan()
    assert (result.updated, result.match_ids) == (1, [])
    assert matched_locations(db) == ["seed.txt"]


def test_cp1251_file_is_decoded_and_matched(db: Database, folder: Path) -> None:
    """A Russian file in Windows-1251 reads correctly and matches its Cyrillic keyword."""
    text = "Новости\nТокаев приказал открывать огонь без предупреждения\nПротестующие в Алматы.\n"
    (folder / "ru.txt").write_bytes(text.encode("cp1251"))
    result = source(db, folder).scan()
    assert len(result.match_ids) == 1
    with db.session() as session:
        assert session.exec(select(ArticleRow)).one().title.startswith("Токаев приказал")


def test_malformed_file_is_logged_once_and_retried_only_when_changed(
    db: Database, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken file is logged once with its path and reason, and read again once edited."""
    broken = folder / "broken.json"
    broken.write_text('{"title": "x", ', encoding="utf-8")
    shutil.copy(SEED, folder / "seed.txt")
    watched = source(db, folder)
    with caplog.at_level(logging.WARNING):
        first = watched.scan()
        watched.scan()
    warnings = [r.getMessage() for r in caplog.records if "broken.json" in r.getMessage()]
    assert len(warnings) == 1
    assert "broken.json" in warnings[0]
    assert "JSON" in warnings[0]
    assert first.new == 1  # the good file next to it is not affected
    with db.session() as session:
        assert session.get(FileRow, ("inbox", "broken.json")).error  # type: ignore[union-attr]
    broken.write_text('{"title": "Tokayev: shoot without warning"}', encoding="utf-8")
    os.utime(broken, ns=(1, 10**18))
    assert watched.scan().new == 1


def test_symlink_out_of_the_folder_is_refused(db: Database, folder: Path, tmp_path: Path) -> None:
    """A link to a file outside the folder is not read; a link inside the folder is."""
    outside = tmp_path / "secret.txt"
    shutil.copy(SEED, outside)
    (folder / "escape.txt").symlink_to(outside)
    (folder / "inside").mkdir()
    shutil.copy(SEED, folder / "inside" / "real.txt")
    (folder / "alias.txt").symlink_to(folder / "inside" / "real.txt")
    source(db, folder).scan()
    with db.session() as session:
        escape = session.get(FileRow, ("inbox", "escape.txt"))
        keys = sorted(a.key for a in session.exec(select(ArticleRow)).all())
    assert escape is not None
    assert escape.error == "symlink points outside the folder"
    assert keys in (["alias.txt"], ["inside/real.txt"])  # one of the two; the other is a duplicate


def test_fifo_is_never_opened(db: Database, folder: Path) -> None:
    """A named pipe with a document's name is skipped instead of blocking the scan."""
    os.mkfifo(folder / "pipe.txt")
    shutil.copy(SEED, folder / "seed.txt")
    assert source(db, folder).scan().new == 1
    with db.session() as session:
        assert session.get(FileRow, ("inbox", "pipe.txt")).error == "not a regular file"  # type: ignore[union-attr]


def test_file_over_the_size_cap_is_refused(db: Database, folder: Path) -> None:
    """A file larger than max_file_size is recorded as too large and not parsed."""
    shutil.copy(SEED, folder / "seed.txt")
    source(db, folder, max_file_size=1000).scan()
    with db.session() as session:
        error = session.get(FileRow, ("inbox", "seed.txt")).error  # type: ignore[union-attr]
    assert error is not None
    assert error.startswith("file too large")


def test_non_utf8_file_name_is_stored_printably(db: Database, folder: Path) -> None:
    """A file whose name is not UTF-8 is still read, and its stored path is valid text."""
    name = os.fsdecode(b"caf\xe9.txt")
    shutil.copy(SEED, folder / name)
    assert source(db, folder).scan().new == 1
    with db.session() as session:
        assert session.exec(select(ArticleRow)).one().location == "caf\\xe9.txt"


def test_unsupported_and_hidden_files_are_ignored(db: Database, folder: Path) -> None:
    """Binary files, editor backups and dot-folders are not documents."""
    (folder / "image.png").write_bytes(b"\x89PNG")
    (folder / "seed.txt~").write_text("x", encoding="utf-8")
    (folder / ".git").mkdir()
    shutil.copy(SEED, folder / ".git" / "seed.txt")
    assert source(db, folder).scan().new == 0
    with db.session() as session:
        assert session.exec(select(FileRow)).all() == []


def test_missing_folder_is_a_source_error(db: Database, tmp_path: Path) -> None:
    """A folder that does not exist fails the scan with a SourceError naming it."""
    from monitor.errors import SourceError

    with pytest.raises(SourceError, match="does not exist"):
        source(db, tmp_path / "nope").scan()


def test_feed_file_entries_without_ids_are_separate_articles(db: Database, folder: Path) -> None:
    """Entries of one feed file with no GUID or link are distinct articles, alerted each."""
    items = "".join(
        f"<item><title>{title}</title><description>{text}</description></item>"
        for title, text in (
            ("Tokayev orders", "Tokayev told police to shoot without warning."),
            ("Weather", "Sunny in Astana."),
            ("Tokayev again", "Tokayev repeated: shoot without warning."),
        )
    )
    (folder / "wire.rss").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>{items}</channel></rss>',
        encoding="utf-8",
    )
    result = source(db, folder).scan()
    assert (result.new, len(result.match_ids)) == (3, 2)
    with db.session() as session:
        titles = sorted(
            a.title for _m, a in session.exec(select(MatchRow, ArticleRow).join(ArticleRow)).all()
        )
    assert titles == ["Tokayev again", "Tokayev orders"]


def test_unexpected_parser_error_costs_one_file(
    db: Database, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parser that crashes on one file is recorded for that file; the others are read."""
    import monitor.sources.folder as module

    original = module.parse_document

    def fragile(name: str, data: bytes) -> list[object]:
        if name == "bad.txt":
            raise RecursionError("maximum recursion depth exceeded")
        return original(name, data)  # type: ignore[return-value]

    monkeypatch.setattr(module, "parse_document", fragile)
    (folder / "bad.txt").write_text("x\ny\n", encoding="utf-8")
    shutil.copy(SEED, folder / "seed.txt")
    assert source(db, folder).scan().new == 1
    with db.session() as session:
        error = session.get(FileRow, ("inbox", "bad.txt")).error  # type: ignore[union-attr]
    assert error is not None
    assert "RecursionError" in error


def test_folder_moved_in_is_read_and_directories_are_not_files(
    db: Database, folder: Path, tmp_path: Path
) -> None:
    """A folder path reads every file under it; a folder named like a file is no error."""
    outside = tmp_path / "batch"
    (outside / "deep").mkdir(parents=True)
    shutil.copy(SEED, outside / "deep" / "seed.txt")
    (folder / "dir.txt").mkdir()
    watched = source(db, folder)
    outside.rename(folder / "batch")
    assert watched.process(folder / "batch").new == 1
    assert watched.process(folder / "dir.txt").new == 0
    with db.session() as session:
        assert session.get(FileRow, ("inbox", "dir.txt")) is None


def test_scan_stops_between_files_when_asked(db: Database, folder: Path) -> None:
    """A scan given a set stop event returns before reading further files."""
    import threading

    for number in range(3):
        (folder / f"{number}.txt").write_text(f"News\nTitle {number}\nBody {number}.\n", "utf-8")
    halt = threading.Event()
    halt.set()
    assert source(db, folder).scan(halt).new == 0


def test_file_refused_for_its_size_is_read_once_the_cap_is_raised(
    db: Database, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A size refusal is logged once, retried at each scan, and read when the cap allows it."""
    shutil.copy(SEED, folder / "seed.txt")
    with caplog.at_level(logging.WARNING):
        assert source(db, folder, max_file_size=1000).scan().new == 0
        assert source(db, folder, max_file_size=1000).scan().new == 0
    assert len([r for r in caplog.records if "seed.txt" in r.getMessage()]) == 1
    assert source(db, folder).scan().new == 1


def test_folder_is_read_once_on_each_database(db_url: str, folder: Path) -> None:
    """A scanned file's state (its size and nanosecond mtime) is stored on SQLite and on
    PostgreSQL alike, so a rescan reads nothing again."""
    database = Database(db_url)
    database.upgrade()
    try:
        shutil.copy(SEED, folder / SEED.name)
        reader = source(database, folder)
        assert reader.scan().new == 1
        again = reader.scan()
        assert (again.new, again.unchanged) == (0, 0)
        with database.session() as session:
            state = session.exec(select(FileRow)).one()
        assert state.mtime_ns == (folder / SEED.name).stat().st_mtime_ns
        assert state.error is None
    finally:
        database.dispose()


def test_symlink_loops_and_broken_symlinks_are_skipped_with_their_reason(
    db: Database, folder: Path
) -> None:
    """A link to itself is recorded as a loop; a link to a missing file is tried again at the
    next scan, and read once its target exists."""
    (folder / "loop.txt").symlink_to(folder / "loop.txt")
    (folder / "later.txt").symlink_to(folder / "inside" / "later.txt")
    shutil.copy(SEED, folder / "seed.txt")
    watched = source(db, folder)
    assert watched.scan().new == 1
    with db.session() as session:
        assert session.get(FileRow, ("inbox", "loop.txt")).error == "symlink loop"  # type: ignore[union-attr]
        assert session.get(FileRow, ("inbox", "later.txt")).error == "broken symlink"  # type: ignore[union-attr]
    (folder / "inside").mkdir()
    (folder / "inside" / "later.txt").write_text("Tokayev: shoot without warning\n", "utf-8")
    assert watched.scan().new == 1


def test_hostile_files_fail_alone_in_the_parser_processes(db: Database, folder: Path) -> None:
    """With the daemon's parser processes, a mail whose headers make the standard library's
    parser take gigabytes, or one that takes seconds, fails with its reason under the limits,
    the daemon's own memory untouched; the worker is replaced and the good file beside them read.
    """
    # 20,000 encoded words in a Subject: 2.6 GB and 3.6 s in the standard library's parser.
    (folder / "bomb.eml").write_bytes(
        b"Subject: " + b"=?utf-8?Q?a?= " * 20_000 + b"\r\n\r\nbody\r\n"
    )
    # 10,000 Content-Type parameters: about 3 s, little memory.
    (folder / "slow.eml").write_bytes(
        b"Subject: s\r\nContent-Type: text/plain; " + b"a=b; " * 10_000 + b"\r\n\r\nbody\r\n"
    )
    shutil.copy(SEED, folder / "seed.txt")
    parsers = DocumentPool(1, timeout=0.5, memory_limit=128 * 1024 * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        assert source(db, folder, parsers).scan().new == 1
    finally:
        parsers.close()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KB
    with db.session() as session:
        bomb = session.get(FileRow, ("inbox", "bomb.eml"))
        slow = session.get(FileRow, ("inbox", "slow.eml"))
    assert bomb is not None
    assert bomb.error is not None
    assert "memory" in bomb.error
    assert slow is not None
    assert slow.error == "reading took longer than 0.5 s"
    # Out of memory is the file's own doing; out of time may be the machine's: tried again.
    assert bomb.digest != _RETRY
    assert slow.digest == _RETRY


def test_files_read_in_the_parser_processes_are_the_files_read_here(
    db: Database, folder: Path, tmp_path: Path
) -> None:
    """The parser processes return the articles parse_document returns in this process."""
    shutil.copy(SEED, folder / "seed.txt")
    (folder / "note.md").write_text("---\ntitle: Note\ntags: [a]\n---\nTokayev spoke.\n", "utf-8")
    parsers = DocumentPool(1, timeout=10)
    try:
        for name in ("seed.txt", "note.md"):
            data = (folder / name).read_bytes()
            assert parsers.parse(name, data) == parse_document(name, data)
        with pytest.raises(DocumentError, match="unsupported file type"):
            parsers.parse("x.exe", b"MZ")
    finally:
        parsers.close()
