"""Only regular files of bounded size are read or appended to: a FIFO, a device or a directory is
refused at once (never read forever, never blocked on), whatever symlink leads to it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bulkgroups.files import FileRefused, check_appendable, open_regular, read_regular


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"version: 1\n")
    assert read_regular(path, limit=100) == b"version: 1\n"
    with open_regular(path, limit=100) as file:
        assert file.readline() == b"version: 1\n"


def test_a_fifo_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    with pytest.raises(FileRefused, match="FIFO"):
        read_regular(fifo, limit=100)
    with pytest.raises(FileRefused, match="FIFO"):
        check_appendable(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/full", "/dev/null"])
def test_devices_are_refused(device: str, tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match="character device"):
        read_regular(device, limit=100)
    with pytest.raises(FileRefused, match="character device"):
        check_appendable(device)
    link = tmp_path / "ledger.jsonl"
    link.symlink_to(device)
    with pytest.raises(FileRefused, match="character device"):
        check_appendable(link)
    with pytest.raises(FileRefused, match="character device"):
        open_regular(link, limit=100)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match="directory"):
        read_regular(tmp_path, limit=100)
    with pytest.raises(FileRefused, match="directory"):
        check_appendable(tmp_path)


def test_a_file_over_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(FileRefused, match="more than the 1 KiB"):
        read_regular(path, limit=1024)


def test_a_missing_file_is_reported_as_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "nope", limit=100)
    check_appendable(tmp_path / "nope")  # will be created: fine
