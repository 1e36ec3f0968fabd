"""Property: any valid job reads the same whether written as YAML or as CSV, in any order, and
whichever form names each LinkedIn profile (URL or `in:<slug>`)."""

from __future__ import annotations

import csv
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

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
# Users: provider ids (no space, no colon: such a value is a name or a URL, not an id) or
# profiles, held in their canonical form `in:<slug>` and written in a form chosen per file.
slugs = st.text(st.sampled_from("abcxyz019-_éü"), min_size=3, max_size=20)
provider_ids = ids.filter(lambda s: " " not in s and ":" not in s)
users = st.one_of(provider_ids, slugs.map(lambda slug: f"in:{slug}"))
PROFILE_FORMS = (
    "in:{slug}",
    "in:{upper}",
    "https://www.linkedin.com/in/{slug}/",
    "http://linkedin.com/in/{slug}",
    "https://uk.linkedin.com/in/{slug}?trk=export#top",
    "linkedin.com/in/{encoded}/",
    "HTTPS://WWW.LINKEDIN.COM/in/{upper}",
)


def written(user: str, rng: random.Random) -> str:
    """How a file writes `user`: a provider id as it is, a profile in any accepted form."""
    if not user.startswith("in:"):
        return user
    slug = user[3:]
    form = rng.choice(PROFILE_FORMS)
    return form.format(slug=slug, upper=slug.upper(), encoded=quote(slug))


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
    chosen = draw(st.lists(users, unique=True, max_size=8))
    desired = draw(st.booleans())
    split = draw(st.integers(0, len(chosen)))
    rename = draw(st.none() | names)
    leave = draw(st.booleans())
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    members: tuple[str, ...] | None = None
    protect: tuple[str, ...] = ()
    if desired:
        protect = tuple(draw(st.lists(st.sampled_from(chosen), unique=True)) if chosen else [])
        members = tuple(chosen[:split])
    else:
        add, remove = tuple(chosen[:split]), tuple(chosen[split:])
        if not (add or remove or rename or leave):
            leave = True  # a chat must ask for something
    return Spec(draw(ids), draw(ids), add, remove, members, protect, rename, leave)


jobs = st.lists(chat_specs(), max_size=6, unique_by=lambda s: (s.account, s.chat))


def as_yaml(specs: list[Spec], rng: random.Random) -> str:
    chats = []
    for spec in specs:
        entry: dict[str, object] = {"chat": spec.chat, "account": spec.account}
        if spec.members is not None:
            entry["members"] = [written(u, rng) for u in spec.members]
            if spec.protect:
                entry["protect"] = [written(u, rng) for u in spec.protect]
        else:
            if spec.add:
                entry["add"] = [written(u, rng) for u in spec.add]
            if spec.remove:
                entry["remove"] = [written(u, rng) for u in spec.remove]
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
        where = [spec.account, spec.chat]
        rows += [[*where, "add", written(user, rng), ""] for user in spec.add]
        rows += [[*where, "remove", written(user, rng), ""] for user in spec.remove]
        if spec.members is not None:
            rows += [[*where, "member", written(user, rng), ""] for user in spec.members]
            rows.append([*where, "member", "", ""])
            rows += [[*where, "protect", written(user, rng), ""] for user in spec.protect]
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
