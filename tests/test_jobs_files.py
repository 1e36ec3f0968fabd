"""Job files are regular files of bounded size: a FIFO, a device, a directory (or a symlink to
one) is a located error at once, never read forever; a file above the bound is refused before it
is read. Errors about a whole file have no line: `PATH: file: message`, never a made-up `:0:`."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bulkgroups.errors import JobFileError, JobFileErrors
from bulkgroups.files import JOB_FILE_LIMIT
from bulkgroups.jobs import load_job

from helpers.jobs import lines, write

EXTENSIONS = ["yaml", "csv"]


def errors_within_seconds(path: Path, seconds: float = 10.0) -> list[JobFileError]:
    """The errors of loading `path`, which must come at once: a load blocked on a FIFO or reading
    a device forever fails the test instead of hanging it (the thread is a daemon)."""
    caught: list[JobFileErrors] = []

    def load() -> None:
        try:
            load_job(path)
        except JobFileErrors as errors:
            caught.append(errors)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"loading {path} did not finish within {seconds} s"
    (errors,) = caught
    return list(errors.errors)


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_a_missing_file_is_an_error_without_a_line(tmp_path: Path, ext: str) -> None:
    assert lines(tmp_path / f"nope.{ext}") == [f"nope.{ext}: file: no such file"]


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_a_fifo_is_refused_at_once_without_waiting_for_a_writer(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"job.{ext}"
    os.mkfifo(path)
    (error,) = errors_within_seconds(path)
    assert str(error) == f"{path}: file: a FIFO (named pipe), not a regular file"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/full", "/dev/null"])
@pytest.mark.parametrize("ext", EXTENSIONS)
def test_a_device_or_a_symlink_to_one_is_refused_at_once(
    tmp_path: Path, device: str, ext: str
) -> None:
    link = tmp_path / f"job.{ext}"
    link.symlink_to(device)
    for path in (link, Path(device)):
        (error,) = errors_within_seconds(path)
        assert str(error) == f"{path}: file: a character device, not a regular file"


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_a_directory_or_a_symlink_to_one_is_not_a_job_file(tmp_path: Path, ext: str) -> None:
    directory = tmp_path / f"dir.{ext}"
    directory.mkdir()
    link = tmp_path / f"link.{ext}"
    link.symlink_to(directory)
    assert lines(directory) == [f"dir.{ext}: file: a directory, not a regular file"]
    assert lines(link) == [f"link.{ext}: file: a directory, not a regular file"]


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_a_file_above_the_bound_is_refused_before_it_is_read(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"huge.{ext}"
    with path.open("wb") as out:
        out.truncate(JOB_FILE_LIMIT + 1)  # sparse: no disk used, nothing to read
    size = f"{JOB_FILE_LIMIT + 1:,}"
    assert lines(path) == [
        f"huge.{ext}: file: is {size} bytes, more than the 512 MiB read from such a file"
    ]


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_an_unreadable_path_says_why_without_a_line(tmp_path: Path, ext: str) -> None:
    not_a_folder = write(tmp_path, "notes.txt", "hello\n")
    assert lines(not_a_folder / f"job.{ext}") == [f"job.{ext}: file: cannot read: Not a directory"]


def test_whole_file_errors_come_before_located_ones_of_the_same_job(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "version: 2\n")
    assert lines(tmp_path / "nope.csv", bad, bad) == [
        "bad.yaml: file: given twice (as " + repr(str(bad)) + ")",
        "nope.csv: file: no such file",
        "bad.yaml:1: version: unsupported version '2' (this bulkgroups reads version: 1)",
    ]
