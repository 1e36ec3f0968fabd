"""One job from one or more files: each file read, then what only the whole job can check (a chat
or an account's settings in two files, a file given twice)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from ..errors import JobFileError, JobFileErrors
from ..model import AccountSettings, ChatJob, Job
from .csv_file import read_csv
from .drafts import FileResult
from .hashing import job_sha256
from .report import FileReport, quote
from .source import is_csv
from .yaml_file import read_yaml

__all__ = ["load_job"]


def _read_all(paths: tuple[str, ...], reports: dict[str, FileReport]) -> list[FileResult]:
    """Read every file, YAML first (CSV rows may need their defaults), in command-line order."""
    results: dict[str, FileResult] = {}
    for path in paths:
        if not is_csv(path):
            results[path] = read_yaml(path, reports[path])
    defaults = {
        r.path: r.default_account for r in results.values() if r.default_account is not None
    }
    for path in paths:
        if is_csv(path):
            results[path] = read_csv(path, reports[path], defaults)
    return [results[path] for path in paths]


def _distinct_files(names: tuple[str, ...]) -> tuple[list[str], list[JobFileError]]:
    """The files in command-line order, each once, and an error for each one given again."""
    errors: list[JobFileError] = []
    unique: list[str] = []
    first_by_file: dict[Path, str] = {}
    for name in names:
        resolved = Path(name).resolve()
        if resolved in first_by_file:
            errors.append(
                JobFileError(
                    name, None, "file", f"given twice (as {quote(first_by_file[resolved])})"
                )
            )
            continue
        first_by_file[resolved] = name
        unique.append(name)
    return unique, errors


class _Assembly:
    """The job as the files' contributions are added, refusing what one file cannot see."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountSettings] = {}
        self.account_places: dict[str, str] = {}
        self.chats: list[ChatJob] = []
        self.chat_places: dict[tuple[str, str], str] = {}

    def add(self, result: FileResult) -> None:
        for account, (settings, line) in result.accounts.items():
            if account in self.account_places:
                result.report.add(
                    line,
                    f"accounts.{account}",
                    f"settings for account {quote(account)} are already given at "
                    f"{self.account_places[account]}",
                )
                continue
            self.account_places[account] = f"{result.path}:{line}"
            self.accounts[account] = settings
        for chat, chat_field in zip(result.chats, result.chat_fields, strict=True):
            key = (chat.account, chat.chat)
            if key in self.chat_places:
                result.report.add(
                    chat.line,
                    chat_field,
                    f"chat {quote(chat.chat)} of account {quote(chat.account)} is already listed "
                    f"at {self.chat_places[key]}",
                )
                continue
            self.chat_places[key] = f"{chat.path}:{chat.line}"
            self.chats.append(chat)


def load_job(*paths: str | os.PathLike[str]) -> Job:
    """Load one job from one or more YAML/CSV files (`.csv` selects CSV).

    Raises JobFileErrors holding every problem of every file, each located (path, line, field).
    """
    unique, errors = _distinct_files(tuple(os.fspath(p) for p in paths))
    if not unique:
        raise JobFileErrors(errors or [JobFileError("-", None, "file", "no job file given")])
    reports = {name: FileReport(name) for name in unique}
    assembly = _Assembly()
    for result in _read_all(tuple(unique), reports):
        assembly.add(result)
    for name in unique:
        errors.extend(reports[name].finish())
    if errors:
        raise JobFileErrors(errors)
    job = Job(
        chats=tuple(assembly.chats),
        accounts=MappingProxyType(assembly.accounts),
        paths=tuple(unique),
    )
    return replace(job, sha256=job_sha256(job))
