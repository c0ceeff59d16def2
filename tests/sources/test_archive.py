"""The archive source (``elt load --from-dir``): recorded responses read as if they had just been fetched."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from elt.errors import SourceError
from elt.sources.archive import ARCHIVE_FETCH_OFFSET, ArchiveSource
from elt.sources.base import FetchError
from tests.load_helpers import ARCHIVE_END, STATIONS, write_archive


def test_an_archive_is_fetched_half_an_hour_into_its_newest_hour(tmp_path: Path) -> None:
    source = ArchiveSource(write_archive(tmp_path / "a", ARCHIVE_END, hours=24))

    fetched = source.fetch(STATIONS[0], since=ARCHIVE_END - timedelta(hours=2))  # the window is not applied

    assert (source.mode, source.location(STATIONS[0])) == (
        "archive",
        str(tmp_path / "a" / f"{STATIONS[0]}.json"),
    )
    assert fetched.fetched_at == ARCHIVE_END + ARCHIVE_FETCH_OFFSET
    assert len(fetched.payload["data"]) > 20 and fetched.url == source.location(STATIONS[0])


def test_a_mapped_file_stem_is_read_for_its_station(tmp_path: Path) -> None:
    write_archive(tmp_path / "a", ARCHIVE_END, hours=24)
    (tmp_path / "a" / f"{STATIONS[0]}.json").rename(tmp_path / "a" / "station1_data.json")

    source = ArchiveSource(tmp_path / "a", {"station1_data": STATIONS[0]})

    assert source.fetch(STATIONS[0]).url.endswith("station1_data.json")


def test_a_missing_or_corrupt_file_names_the_file(tmp_path: Path) -> None:
    source = ArchiveSource(tmp_path)
    with pytest.raises(SourceError, match=r"missing\.json: cannot read the archived response .* --map"):
        source.fetch("missing")
    (tmp_path / "broken.json").write_text('{"data": [')
    with pytest.raises(FetchError, match=r"broken\.json: not valid JSON .*truncated or corrupt"):
        source.fetch("broken")
