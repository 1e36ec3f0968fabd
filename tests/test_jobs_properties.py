"""Property: any valid job reads the same whether written as YAML or as CSV, in any order."""

from __future__ import annotations

import csv
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkgroups.jobs import load_job
from bulkgroups.model import ChatJob

# Ids as exports produce them, including ones YAML would read as numbers, booleans or null
# unless quoted: a correct dumper quotes them, and the loader must then take them as text.
_ID_CHARS = st.sampled_from("abcXYZ019_-:@.é ")
ids = st.one_of(
    st.text(_ID_CHARS, min_size=1, max_size=8),
    st.sampled_from(["yes", "null", "0123", "1e3", "true", "~", "ACoAA0001"]),
).filter(lambda s: s.strip() == s and s not in (".", ".."))
names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20
).filter(lambda s: s.strip() == s and s != "")


@dataclass(frozen=True)
class Spec:
    account: str
    chat: str
    add: tuple[str, ...]
    remove: tuple[str, ...]
    members: tuple[str, ...] | None
    protect: tuple[str, ...]
    rename: str | None
    leave: bool


@st.composite
def chat_specs(draw: st.DrawFn) -> Spec:
    users = draw(st.lists(ids, unique=True, max_size=8))
    desired = draw(st.booleans())
    split = draw(st.integers(0, len(users)))
    rename = draw(st.none() | names)
    leave = draw(st.booleans())
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    members: tuple[str, ...] | None = None
    protect: tuple[str, ...] = ()
    if desired:
        protect = tuple(draw(st.lists(st.sampled_from(users), unique=True)) if users else [])
        members = tuple(users[:split])
    else:
        add, remove = tuple(users[:split]), tuple(users[split:])
        if not (add or remove or rename or leave):
            leave = True  # a chat must ask for something
    return Spec(draw(ids), draw(ids), add, remove, members, protect, rename, leave)


jobs = st.lists(chat_specs(), max_size=6, unique_by=lambda s: (s.account, s.chat))


def as_yaml(specs: list[Spec], rng: random.Random) -> str:
    chats = []
    for spec in specs:
        entry: dict[str, object] = {"chat": spec.chat, "account": spec.account}
        if spec.members is not None:
            entry["members"] = list(spec.members)
            if spec.protect:
                entry["protect"] = list(spec.protect)
        else:
            if spec.add:
                entry["add"] = list(spec.add)
            if spec.remove:
                entry["remove"] = list(spec.remove)
        if spec.rename is not None:
            entry["rename"] = spec.rename
        if spec.leave:
            entry["leave"] = True
        items = list(entry.items())
        rng.shuffle(items)
        chats.append(dict(items))
    rng.shuffle(chats)
    return yaml.safe_dump({"version": 1, "chats": chats}, allow_unicode=True, sort_keys=False)


def as_csv(specs: list[Spec], path: Path, rng: random.Random) -> None:
    rows: list[list[str]] = []
    for spec in specs:
        rows += [[spec.account, spec.chat, "add", user, ""] for user in spec.add]
        rows += [[spec.account, spec.chat, "remove", user, ""] for user in spec.remove]
        if spec.members is not None:
            rows += [[spec.account, spec.chat, "member", user, ""] for user in spec.members]
            rows.append([spec.account, spec.chat, "member", "", ""])
            rows += [[spec.account, spec.chat, "protect", user, ""] for user in spec.protect]
        if spec.rename is not None:
            rows.append([spec.account, spec.chat, "rename", "", spec.rename])
        if spec.leave:
            rows.append([spec.account, spec.chat, "leave", "", ""])
    rng.shuffle(rows)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "user", "action", "chat", "account"])
        writer.writerows(row[::-1] for row in rows)


def canonical(chat: ChatJob) -> tuple[object, ...]:
    return (
        chat.account,
        chat.chat,
        frozenset(chat.add),
        frozenset(chat.remove),
        None if chat.members is None else frozenset(chat.members),
        frozenset(chat.protect),
        chat.rename,
        chat.leave,
    )


@settings(max_examples=60, deadline=None)
@given(specs=jobs, seed=st.integers(0, 2**32))
def test_yaml_and_csv_of_one_job_load_to_the_same_chats_and_hash(
    specs: list[Spec], seed: int
) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        yaml_path = Path(folder) / "job.yaml"
        yaml_path.write_text(as_yaml(specs, rng), encoding="utf-8")
        csv_path = Path(folder) / "job.csv"
        as_csv(specs, csv_path, rng)
        from_yaml, from_csv = load_job(yaml_path), load_job(csv_path)
    expected = {
        canonical(
            ChatJob(s.account, s.chat, s.add, s.remove, s.rename, s.leave, s.members, s.protect)
        )
        for s in specs
    }
    assert {canonical(c) for c in from_yaml.chats} == expected
    assert {canonical(c) for c in from_csv.chats} == expected
    assert from_yaml.sha256 == from_csv.sha256
