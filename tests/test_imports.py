"""`passaparola import`: offline feedback from CSV and JSONL; good rows stored once, bad rows listed with reasons."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from listener import imports
from listener.imports import ImportFileError, read_import
from listener.model import MAX_TEXT_CHARS
from tests.conftest import PASSAPAROLA, T0, run_cli

HEADER = "id,text,published_at,author,channel,author_id,url,language,rating\n"


def config(tmp_path: Path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(f'[storage]\npath = "{tmp_path / "p.db"}"\n', encoding="utf-8")
    return path


def stored(tmp_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(tmp_path / "p.db") as db:
        return db.execute("SELECT key, source, text FROM mentions ORDER BY key").fetchall()


def test_a_csv_with_some_bad_lines_stores_the_good_ones_and_lists_the_bad_ones(tmp_path: Path) -> None:
    csv_file = tmp_path / "calls.csv"
    csv_file.write_text(
        "\ufeff"  # as Excel saves it
        + HEADER
        + 'c-1,"Il pacco è arrivato rotto, voglio un rimborso",2026-03-02T09:15:00+01:00,Maria Rossi,phone,'
        + "cust-9,,it,\n"
        + "c-2,Ottimo servizio,2026-03-02 10:00:00,Paolo,email,,,,\n"  # no time zone
        + "c-3,Capsule buone,2026-03-02T10:00:00Z,Anna,fax,,,,\n"  # unknown channel
        + "c-4,,2026-03-02T10:00:00Z,Anna,email,,,,\n"  # empty text
        + "c-5,Cinque stelle,2026-03-01T18:00:00Z,Luca,review,,https://reviews.example/5,it,5\n"
        + "c-6,Link strano,2026-03-01T18:00:00Z,Luca,review,,javascript:alert(1),,\n"
        + "c-1,Duplicate,2026-03-01T18:00:00Z,Luca,review,,,,\n"
        + "c-7,Tre stelle,2026-03-01T18:00:00Z,Luca,review,,,,9\n",
        encoding="utf-8",
    )
    result = run_cli([*PASSAPAROLA, "import", str(csv_file), "--config", str(config(tmp_path))])
    assert result.returncode == 1, result.stderr
    assert "imported 2 rows" in result.stdout and "(2 new, 0 already stored); 6 rejected" in result.stdout
    errors = [line.split(": rejected: ", 1) for line in result.stderr.splitlines() if ": rejected: " in line]
    assert [(where.rsplit(":", 1)[1], reason.split(";")[0]) for where, reason in errors] == [
        ("3", "published_at '2026-03-02 10:00:00' has no time zone"),
        ("4", "channel 'fax' is not one of phone, email, review, chat, store, site, other"),
        ("5", "text is empty"),
        ("7", "url 'javascript:alert(1)' is not an http(s) link"),
        ("8", "id 'c-1' is repeated (first on line 2)"),
        ("9", "rating '9' is not a whole number from 1 to 5"),
    ]
    assert [(k, s) for k, s, _ in stored(tmp_path)] == [("import:c-1", "phone"), ("import:c-5", "review")]
    with sqlite3.connect(tmp_path / "p.db") as db:
        tags = db.execute("SELECT language, needs_answer_reason FROM mention_tags WHERE key = 'import:c-1'").fetchone()
    assert tags[0] == "it" and tags[1].split(" (")[0] in ("request", "complaint")  # read on the way in

    again = run_cli([*PASSAPAROLA, "import", str(csv_file), "--config", str(config(tmp_path))])
    assert "(0 new, 2 already stored)" in again.stdout and len(stored(tmp_path)) == 2  # idempotent on the id


def test_jsonl_rows_and_bad_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "emails.jsonl"
    rows = [
        {"id": "e-1", "text": "Where is my order?", "published_at": "2026-03-02T08:00:00Z", "author": "Tom"},
        "{not json",
        {"id": "e-2", "text": "Hi", "published_at": "2026-03-02T08:00:00Z", "author": "Tom", "mood": "sad"},
        [1, 2],
    ]
    jsonl.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    mentions, rejected = read_import(jsonl, T0)
    assert [m.key for m in mentions] == ["import:e-1"] and mentions[0].author.platform_id == "tom"
    assert [(r.line, r.reason.split(";")[0]) for r in rejected] == [
        (2, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (3, "unknown field(s) mood"),
        (4, "not a JSON object"),
    ]


def test_an_unreadable_file_stores_nothing_and_says_why(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes((HEADER + "x,caffè,2026-03-02T09:00:00Z,A,,,,,\n").encode("latin-1"))
    result = run_cli([*PASSAPAROLA, "import", str(latin), "--config", str(config(tmp_path))])
    assert result.returncode == 2 and "not UTF-8" in result.stderr
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,message,when\n1,ciao,oggi\n", encoding="utf-8")
    result = run_cli([*PASSAPAROLA, "import", str(wrong), "--config", str(config(tmp_path))])
    assert result.returncode == 2
    assert "missing column(s) text, published_at, author; unknown column(s) message, when" in result.stderr
    assert not (tmp_path / "p.db").exists() or stored(tmp_path) == []


def test_a_jsonl_line_ends_at_a_line_break_only_so_raw_line_separators_inside_text_stay_in_their_row(
    tmp_path: Path,
) -> None:
    """JSON allows U+2028, U+2029 and form feeds unescaped inside strings; they must not cut a row in two."""
    jsonl = tmp_path / "chat.jsonl"
    rows = [
        {"id": "s-1", "text": "Prima riga\u2028seconda riga", "published_at": "2026-03-02T08:00:00Z", "author": "A"},
        {"id": "s-2", "text": "Pagina\fnuova\u2029fine", "published_at": "2026-03-02T08:00:00Z", "author": "B"},
        {"id": "s-3", "text": "Ultima", "published_at": "2026-03-02T08:00:00Z", "author": "C"},
    ]
    jsonl.write_text("\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n", encoding="utf-8")
    mentions, rejected = read_import(jsonl, T0)
    assert rejected == []
    assert [m.key for m in mentions] == ["import:s-1", "import:s-2", "import:s-3"]
    assert "Prima riga" in mentions[0].text and "seconda riga" in mentions[0].text


def test_a_bad_byte_deep_in_a_large_file_is_named_before_anything_is_stored(tmp_path: Path) -> None:
    """The file is read in chunks; the first bad byte is still named exactly, and no row before it is stored."""
    good = "".join(f"g-{i},Tutto bene è,2026-03-02T08:00:00Z,Anna,email,,,,\n" for i in range(40_000)).encode()
    data = HEADER.encode() + good + b"z-1,caff" + "è".encode("latin-1") + b",2026-03-02T08:00:00Z,B,,,,,\n"
    assert len(data) > 2 << 20  # past the check's first chunks
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(data)
    bad = data.index(b"caff") + 4
    result = run_cli([*PASSAPAROLA, "import", str(csv_file), "--config", str(config(tmp_path))])
    assert result.returncode == 2 and f"not UTF-8 (byte {bad}); save the file as UTF-8" in result.stderr
    assert not (tmp_path / "p.db").exists() or stored(tmp_path) == []


def test_the_bad_byte_is_named_exactly_wherever_the_chunks_fall(tmp_path: Path, monkeypatch: Any) -> None:
    """A chunk may end inside a character: the byte named is the file's, not the chunk's."""
    path = tmp_path / "notes.jsonl"
    cases = [("caffè €".encode() + b"\xff", 10), ("aé".encode() * 5 + b"\xe8x", 15), (b"ok \xe2\x82", 3)]
    for chunk in range(1, 9):
        monkeypatch.setattr(imports, "_CHUNK_BYTES", chunk)
        for data, bad in cases:
            path.write_bytes(data)
            with pytest.raises(ImportFileError, match=rf"not UTF-8 \(byte {bad}\)"):
                read_import(path, T0)


def test_a_megabyte_cell_is_cut_or_rejected_on_its_own_line_and_the_other_rows_are_stored(tmp_path: Path) -> None:
    """csv stops a whole file at a cell over 128 KiB; a huge text is cut as Mention cuts it, a huge id refused."""
    huge = "parola " * 150_000  # about 1 MB, with a quoted newline so the row spans two lines
    csv_file = tmp_path / "export.csv"
    csv_file.write_text(
        HEADER
        + "r-1,Prima riga,2026-03-02T08:00:00Z,Anna,email,,,,\n"
        + f'r-2,"{huge}\n{huge}",2026-03-02T08:00:00Z,Sofia Marino,review,,,,\n'
        + f"{'x' * 1_000_000},Id enorme,2026-03-02T08:00:00Z,Paolo,phone,,,,\n"
        + "r-4,Ultima riga,2026-03-02T08:00:00Z,Luca,chat,,,,\n",
        encoding="utf-8",
    )
    mentions, rejected = read_import(csv_file, T0)
    assert [m.key for m in mentions] == ["import:r-1", "import:r-2", "import:r-4"]
    assert len(mentions[1].text) == MAX_TEXT_CHARS and mentions[1].text.endswith("…")
    assert [(r.line, r.reason) for r in rejected] == [(5, "id is longer than 200 characters")]
    result = run_cli([*PASSAPAROLA, "import", str(csv_file), "--config", str(config(tmp_path))])
    assert result.returncode == 1 and "(3 new, 0 already stored); 1 rejected" in result.stdout, result.stderr
    assert f"{csv_file}:5: rejected: id is longer than 200 characters" in result.stderr
    assert [k for k, _, _ in stored(tmp_path)] == ["import:r-1", "import:r-2", "import:r-4"]


def test_a_lone_surrogate_is_cleaned_from_text_and_refuses_an_id(tmp_path: Path) -> None:
    """JSON may escape half an emoji; SQLite cannot store it, so text is cleaned and an id names the problem."""
    jsonl = tmp_path / "chat.jsonl"
    rows = [
        {"id": "j-1", "text": "Grazie \ud83d", "published_at": "2026-03-02T08:00:00Z", "author": "Sofia \ud83d"},
        {"id": "j-\ud83d", "text": "Ciao", "published_at": "2026-03-02T08:00:00Z", "author": "Tom"},
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = run_cli([*PASSAPAROLA, "import", str(jsonl), "--config", str(config(tmp_path))])
    assert result.returncode == 1 and "(1 new, 0 already stored); 1 rejected" in result.stdout, result.stderr
    assert f"{jsonl}:2: rejected: id holds a lone surrogate" in result.stderr
    assert stored(tmp_path) == [("import:j-1", "other", "Grazie ?")]
