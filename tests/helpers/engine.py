"""Shared helpers for engine and CLI tests: jobs written as real files, ledgers read back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import yaml

from bulkgroups.model import RateSpec


def write_job(
    path: Path, chats: list[dict[str, Any]], accounts: dict[str, Any] | None = None
) -> Path:
    """Write a YAML job file (version 1) and return its path."""
    document: dict[str, Any] = {"version": 1, "chats": chats}
    if accounts:
        document["accounts"] = accounts
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def ledger_records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def op_records(path: Path) -> list[dict[str, Any]]:
    return [r for r in ledger_records(path) if r["type"] == "op"]


def op_id_counts(path: Path) -> Counter[str]:
    return Counter(r["op_id"] for r in op_records(path))


def rate(count: int, period: float = 1.0) -> RateSpec:
    return RateSpec(count, period)
