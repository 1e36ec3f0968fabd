"""One job from several files, its hash, the owner rule, the example jobs, and big CSV jobs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bulkgroups.errors import JobFileError, JobFileErrors
from bulkgroups.jobs import job_sha256, load_job, locate_owner_rule
from bulkgroups.model import AccountSettings, ChatJob, Job, RateSpec
from bulkgroups.planner import owner_rule_violations

from helpers.jobs import failures, lines, write

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"

# --------------------------------------------------------------------------------------------
# Several files, one job
# --------------------------------------------------------------------------------------------


def test_several_files_form_one_job_in_command_line_order(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yaml",
        "version: 1\ndefaults: {account: a1}\nchats:\n  - {chat: c1, add: [u1]}\n",
    )
    b = write(tmp_path, "b.csv", "account,chat,action,user,name\n,c2,remove,u2,\na2,c1,leave,,\n")
    c = write(tmp_path, "c.yaml", "version: 1\naccounts:\n  a2: {rate: 3/s}\n")
    job = load_job(a, b, c)
    assert job.paths == (str(a), str(b), str(c))
    assert [(ch.account, ch.chat, ch.path) for ch in job.chats] == [
        ("a1", "c1", str(a)),
        ("a1", "c2", str(b)),
        ("a2", "c1", str(b)),
    ]
    assert job.accounts == {"a2": AccountSettings(rate=RateSpec(3, 1.0))}
    assert job.account_ids() == ("a1", "a2")


def test_a_chat_in_two_files_is_reported_in_the_second_naming_the_first(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "version: 1\nchats:\n  - {chat: c1, account: a1, add: [u1]}\n")
    b = write(tmp_path, "b.csv", "account,chat,action,user,name\na1,c0,add,u1,\na1,c1,add,u2,\n")
    assert lines(a, b) == [f"b.csv:3: chat: chat 'c1' of account 'a1' is already listed at {a}:3"]
    # The other way round, the YAML is second.
    assert lines(b, a) == [
        f"a.yaml:3: chats[0].chat: chat 'c1' of account 'a1' is already listed at {b}:3"
    ]


def test_settings_for_one_account_in_two_files_are_an_error(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "version: 1\naccounts:\n  a1: {rate: 1/s}\n")
    b = write(tmp_path, "b.yaml", "version: 1\n\naccounts:\n  a1: {write_rate: 1/min}\n")
    assert lines(a, b) == [
        f"b.yaml:4: accounts.a1: settings for account 'a1' are already given at {a}:3"
    ]


def test_errors_of_every_file_are_reported_together(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "version: 2\n")
    b = write(tmp_path, "b.csv", "account,chat,action,user,name\na1,c1,kick,u1,\n")
    missing = tmp_path / "missing.yaml"
    assert lines(a, missing, b) == [
        "a.yaml:1: version: unsupported version '2' (this bulkgroups reads version: 1)",
        "missing.yaml: file: no such file",
        "b.csv:2: action: unknown action 'kick' (expected one of add, remove, rename, leave, "
        "member, protect)",
    ]


def test_the_same_file_twice_is_an_error(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "version: 1\nchats:\n  - {chat: c1, account: a1, add: [u1]}\n")
    (error,) = failures(a, tmp_path / "." / "a.yaml")
    assert str(error) == f"{tmp_path / '.' / 'a.yaml'}: file: given twice (as {str(a)!r})"


def test_no_file_at_all_is_an_error() -> None:
    with pytest.raises(JobFileErrors):
        load_job()


def test_the_error_group_prints_one_line_per_error(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "version: 1\nchats:\n  - {chat: .., account: a1, add: [' u']}\n")
    with pytest.raises(JobFileErrors) as caught:
        load_job(a)
    assert str(caught.value).splitlines() == [str(e) for e in caught.value.errors]
    assert len(caught.value.errors) == 2


# --------------------------------------------------------------------------------------------
# The job's hash
# --------------------------------------------------------------------------------------------

JOB_A = """\
version: 1
accounts:
  a1: {rate: 2/s, daily_limit: 20}
chats:
  - chat: c1
    account: a1
    add: [u1, u2]
    remove: [u3]
    rename: Team
  - chat: c2
    account: a1
    members: [u4, u5]
    protect: [u6, u7]
"""

# The same job: keys, chats and set members in another order, flow style, a default account.
JOB_A_REORDERED = """\
chats:
  - {protect: [u7, u6], members: [u5, u4], chat: c2}
  - rename: Team
    remove: [u3]
    chat: c1
    add: [u2, u1]
defaults: {account: a1}
accounts:
  a1: {daily_limit: 20, rate: 2/s}
version: 1
"""


def test_the_hash_ignores_key_order_list_order_and_defaults(tmp_path: Path) -> None:
    a = load_job(write(tmp_path, "a.yaml", JOB_A))
    b = load_job(write(tmp_path, "b.yaml", JOB_A_REORDERED))
    assert a.sha256 == b.sha256 == job_sha256(a) == job_sha256(b)


def test_the_hash_ignores_file_order_and_how_the_job_is_split(tmp_path: Path) -> None:
    whole = load_job(write(tmp_path, "whole.yaml", JOB_A))
    one = write(tmp_path, "one.yaml", "version: 1\naccounts:\n  a1: {rate: 2/s, daily_limit: 20}\n")
    two = write(
        tmp_path,
        "two.csv",
        "account,chat,action,user,name\n"
        "a1,c2,member,u5,\na1,c1,remove,u3,\na1,c2,protect,u7,\na1,c1,add,u1,\n"
        "a1,c2,member,u4,\na1,c1,rename,,Team\na1,c1,add,u2,\na1,c2,protect,u6,\n",
    )
    assert load_job(one, two).sha256 == load_job(two, one).sha256 == whole.sha256


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("add: [u1, u2]", "add: [u1, u2, u8]"),
        ("remove: [u3]", "remove: [u3, u8]"),
        ("rename: Team", "rename: Team2"),
        ("members: [u4, u5]", "members: [u4]"),
        ("protect: [u6, u7]", "protect: [u6]"),
        ("    account: a1\n    members", "    account: a2\n    members"),
        ("daily_limit: 20", "daily_limit: 21"),
        ("rate: 2/s", "rate: 120/min"),
        ("chat: c1", "chat: c9"),
    ],
)
def test_any_change_of_meaning_changes_the_hash(tmp_path: Path, old: str, new: str) -> None:
    assert old in JOB_A
    base = load_job(write(tmp_path, "a.yaml", JOB_A))
    changed = load_job(write(tmp_path, "b.yaml", JOB_A.replace(old, new, 1)))
    assert changed.sha256 != base.sha256


def test_members_empty_and_no_members_hash_differently(tmp_path: Path) -> None:
    chat = ChatJob("a1", "c1")
    assert job_sha256(Job(chats=(chat,))) != job_sha256(
        Job(chats=(ChatJob("a1", "c1", members=()),))
    )


def test_leave_changes_the_hash_and_empty_settings_do_not(tmp_path: Path) -> None:
    base = Job(chats=(ChatJob("a1", "c1", add=("u1",)),))
    assert job_sha256(base) != job_sha256(
        Job(chats=(ChatJob("a1", "c1", add=("u1",), leave=True),))
    )
    assert job_sha256(base) == job_sha256(Job(chats=base.chats, accounts={"a1": AccountSettings()}))


# --------------------------------------------------------------------------------------------
# The owner rule, located from what load_job kept
# --------------------------------------------------------------------------------------------


def located_owner_rule(job: Job, owners: dict[str, str]) -> list[JobFileError]:
    """What the engine's caller does: the violations as values, then their locations."""
    return locate_owner_rule(job, owner_rule_violations(job, owners))


def test_owner_rule_finds_the_owner_in_remove_members_and_protect(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 1
        defaults: {account: a1}
        chats:
          - chat: c1
            add: [OWNER2]               # another account's owner: an ordinary user here
            remove: [u1, OWNER1]
          - chat: c2
            members:
              - u2
              - OWNER1
            protect: [OWNER1]
          - chat: c3
            account: a2
            remove: [OWNER1, OWNER2]
        """,
    )
    job = load_job(path)
    errors = located_owner_rule(job, {"a1": "OWNER1", "a2": "OWNER2"})
    assert [(e.path, e.line, e.field) for e in errors] == [
        (str(path), 6, "chats[0].remove[1]"),
        (str(path), 10, "chats[1].members[1]"),
        (str(path), 11, "chats[1].protect[0]"),
        (str(path), 14, "chats[2].remove[1]"),
    ]
    assert str(errors[0]) == (
        f"{path}:6: chats[0].remove[1]: 'OWNER1' is the owner of account 'a1': the owner may not "
        "be in remove, members or protect (an owner leaves only via leave)"
    )


def test_owner_rule_in_csv_uses_the_row_and_the_default_account(tmp_path: Path) -> None:
    settings = write(tmp_path, "settings.yaml", "version: 1\ndefaults: {account: a1}\n")
    path = write(
        tmp_path,
        "job.csv",
        "account,chat,action,user,name\n"
        "a1,c1,add,OWNER2,\n"
        ",c1,remove,OWNER1,\n"
        "a1,c2,member,OWNER1,\n"
        "a2,c2,protect,OWNER1,\n"
        "a2,c2,member,u1,\n",
    )
    job = load_job(settings, path)
    errors = located_owner_rule(job, {"a1": "OWNER1", "a2": "OWNER2"})
    assert [(Path(e.path).name, e.line, e.field) for e in errors] == [
        ("job.csv", 3, "user"),
        ("job.csv", 4, "user"),
    ]


def test_owner_rule_errors_follow_the_command_line_order_of_files(tmp_path: Path) -> None:
    second = write(tmp_path, "b.csv", "account,chat,action,user,name\na1,c2,remove,O1,\n")
    first = write(
        tmp_path, "a.yaml", "version: 1\nchats:\n  - {chat: c1, account: a1, remove: [O1]}\n"
    )
    errors = located_owner_rule(load_job(first, second), {"a1": "O1"})
    assert [(Path(e.path).name, e.line) for e in errors] == [("a.yaml", 3), ("b.csv", 2)]


def test_owner_rule_is_silent_for_a_clean_job_and_unknown_owners(tmp_path: Path) -> None:
    job = load_job(EXAMPLES / "cohorts.yaml")
    assert located_owner_rule(job, {}) == []
    assert located_owner_rule(job, {"acc_cohorts_eu": "ACoAOSOMEONE"}) == []


def test_owner_rule_locations_never_read_the_files_again(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\nchats:\n  - chat: c1\n    account: a1\n    remove: [u1, O1]\n",
    )
    job = load_job(path)
    path.write_text("version: 1\n")  # changed since it was loaded, then gone
    path.unlink()
    (error,) = located_owner_rule(job, {"a1": "O1"})
    assert (error.path, error.line, error.field) == (str(path), 5, "chats[0].remove[1]")


def test_owner_rule_of_a_job_built_in_code_points_at_the_chat() -> None:
    job = Job(chats=(ChatJob("a1", "c1", remove=("O1",), path="job.yaml", line=7),))
    (error,) = located_owner_rule(job, {"a1": "O1"})
    assert (error.path, error.line, error.field) == ("job.yaml", 7, "chat")
    assert "'O1' is the owner of account 'a1'" in error.message


def test_owner_rule_locations_cost_four_bytes_a_user(tmp_path: Path) -> None:
    users = [f"ACoAA{i:06d}" for i in range(5000)]
    rows = "".join(f"a1,c1,member,{user},\n" for user in users)
    path = write(tmp_path, "job.csv", "account,chat,action,user,name\n" + rows)
    (chat,) = load_job(path).chats
    assert chat.user_lines is not None
    assert len(chat.user_lines.members) == 4 * len(users)
    assert chat.user_lines.remove == chat.user_lines.protect == b""  # nothing kept for none
    (error,) = located_owner_rule(load_job(path), {"a1": users[-1]})
    assert (error.line, error.field) == (len(users) + 1, "user")


# --------------------------------------------------------------------------------------------
# The example jobs
# --------------------------------------------------------------------------------------------


def test_example_cohorts_is_an_imperative_diff_with_a_leave() -> None:
    job = load_job(EXAMPLES / "cohorts.yaml")
    assert 2 <= len(job.account_ids()) <= 4
    assert 3 <= len(job.chats) <= 10
    assert not any(c.is_desired_state for c in job.chats)
    assert sum(c.leave for c in job.chats) == 1
    assert any(c.rename for c in job.chats)
    assert any(c.add for c in job.chats) and any(c.remove for c in job.chats)


def test_example_reconcile_is_a_desired_state_with_protect() -> None:
    job = load_job(EXAMPLES / "reconcile.yaml")
    assert 2 <= len(job.account_ids()) <= 4
    assert 3 <= len(job.chats) <= 10
    assert all(c.is_desired_state for c in job.chats)
    assert any(c.protect for c in job.chats)


def test_example_export_csv_mixes_actions() -> None:
    job = load_job(EXAMPLES / "export.csv")
    assert 2 <= len(job.account_ids()) <= 4
    assert 3 <= len(job.chats) <= 10
    assert any(c.add and c.remove and c.rename for c in job.chats)
    assert any(c.is_desired_state and c.protect for c in job.chats)
    assert any(c.leave for c in job.chats)


README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize(
    ("section", "fence", "name"), [("YAML", "yaml", "job.yaml"), ("CSV", "csv", "job.csv")]
)
def test_the_readmes_job_file_examples_load(
    tmp_path: Path, section: str, fence: str, name: str
) -> None:
    text = README.read_text(encoding="utf-8")
    example = text.split(f"### {section}\n\n```{fence}\n", 1)[1].split("```", 1)[0]
    job = load_job(write(tmp_path, name, example))
    assert [c.chat for c in job.chats] == ["chat_A", "chat_B", "chat_C"]
    if section == "YAML":
        assert job.chats[0].add == ("ACoAA1", "in:ann-kim-0161")
        assert job.chats[1].members == ("ACoAA1", "in:bo-lee-42")


SPECIAL_ACCOUNT_WORDS = ("disconnected", "errored", "paused", "recruiter", "salesnav", "company")
SPECIAL_CHAT_PREFIXES = ("1to1", "gone", "big")


@pytest.mark.parametrize("name", ["cohorts.yaml", "reconcile.yaml", "export.csv"])
def test_examples_avoid_the_simulators_failure_ids(name: str) -> None:
    job = load_job(EXAMPLES / name)
    for chat in job.chats:
        assert not any(word in chat.account.lower() for word in SPECIAL_ACCOUNT_WORDS)
        assert not chat.chat.startswith(SPECIAL_CHAT_PREFIXES)


# --------------------------------------------------------------------------------------------
# Big jobs
# --------------------------------------------------------------------------------------------


def test_a_200k_row_csv_loads_into_compact_interned_chats(tmp_path: Path) -> None:
    accounts, chats_per_account, rows = 4, 50, 200_000
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("account,chat,action,user,name\r\n")
        for i in range(rows):
            account = f"acc_{i % accounts}"
            chat = f"chat_{(i // accounts) % chats_per_account}"
            action = "add" if i % 3 else "remove"
            out.write(f"{account},{chat},{action},ACoAA{i:07d},\r\n")
    job = load_job(path)
    assert len(job.chats) == accounts * chats_per_account
    assert sum(len(c.add) + len(c.remove) for c in job.chats) == rows
    by_key = {(c.account, c.chat): c for c in job.chats}
    # Row i (line i + 2) lands in its chat, in file order, in the right list.
    for i in (0, 1, 2, 3, 199_999, 123_457):
        where = by_key[(f"acc_{i % accounts}", f"chat_{(i // accounts) % chats_per_account}")]
        assert f"ACoAA{i:07d}" in (where.add if i % 3 else where.remove)
    first = by_key[("acc_0", "chat_0")]
    assert first.line == 2
    assert first.remove[0] == "ACoAA0000000"
    assert isinstance(first.add, tuple)
    # Ids repeated on every row are one string object each, not one per row.
    assert all(c.account is sys.intern(c.account) for c in job.chats)
    assert all(c.chat is sys.intern(c.chat) for c in job.chats)
    assert first.add[0] is sys.intern(first.add[0])
