"""YAML job files: what loads, and every rule of the contract as one bad file each.

Every error must name the file, the exact line and the field, so these tests assert all three.
Each test runs with libyaml's C parser and with PyYAML's pure-Python one (the fallback when PyYAML
was built without libyaml): the rules and their lines must not depend on the parser.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from bulkgroups.errors import JobFileError, JobFileErrors
from bulkgroups.jobs import MAX_ERRORS_PER_FILE, load_job, yaml_events
from bulkgroups.model import AccountSettings, ChatJob, RateSpec

from helpers.jobs import failures, lines, located, write


@pytest.fixture(
    autouse=True,
    params=[getattr(yaml, "CSafeLoader", None), yaml.SafeLoader],
    ids=["libyaml", "pure-python"],
)
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test of this file under both parsers."""
    assert request.param is not None, "PyYAML was built without libyaml"
    monkeypatch.setattr(yaml_events, "Loader", request.param)


CONTRACT_EXAMPLE = """\
version: 1                      # required
defaults:
  account: acc_123              # used where a chat names no account
accounts:                       # optional, per account
  acc_123: {rate: 2/s, write_rate: 2/min, daily_limit: 200, max_members: 50}
chats:
  - chat: chat_A                # imperative diff
    account: acc_123
    add: [ACoAA1, ACoAA2]
    remove: [ACoAA3]
    rename: "Cohort 12"
  - chat: chat_B                # desired state
    members: [ACoAA1, ACoAA4]
    protect: [ACoAA9]
  - chat: chat_C
    leave: true
"""


def test_the_contract_example_loads_into_typed_chats(tmp_path: Path) -> None:
    path = write(tmp_path, "job.yaml", CONTRACT_EXAMPLE)
    job = load_job(path)
    assert job.paths == (str(path),)
    assert job.chats == (
        ChatJob(
            account="acc_123",
            chat="chat_A",
            add=("ACoAA1", "ACoAA2"),
            remove=("ACoAA3",),
            rename="Cohort 12",
            path=str(path),
            line=7,
        ),
        ChatJob(
            account="acc_123",
            chat="chat_B",
            members=("ACoAA1", "ACoAA4"),
            protect=("ACoAA9",),
            path=str(path),
            line=12,
        ),
        ChatJob(account="acc_123", chat="chat_C", leave=True, path=str(path), line=15),
    )
    assert dict(job.accounts) == {
        "acc_123": AccountSettings(
            rate=RateSpec(2, 1.0), write_rate=RateSpec(2, 60.0), daily_limit=200, max_members=50
        )
    }
    assert len(job.sha256) == 64


def test_the_job_is_immutable(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, "job.yaml", CONTRACT_EXAMPLE))
    with pytest.raises(TypeError):
        job.accounts["acc_x"] = AccountSettings()  # type: ignore[index]


def test_members_empty_list_is_a_valid_desired_state(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 1
        chats:
          - {chat: c1, account: a1, members: [], protect: [ACoAA9]}
        """,
    )
    (chat,) = load_job(path).chats
    assert chat.members == ()
    assert chat.is_desired_state
    assert chat.protect == ("ACoAA9",)


def test_a_file_with_settings_only_and_no_chats_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, "settings.yaml", "version: 1\naccounts:\n  a1: {daily_limit: 5}\n")
    job = load_job(path)
    assert job.chats == ()
    assert job.accounts["a1"].daily_limit == 5


def test_error_text_is_path_line_field_message(tmp_path: Path) -> None:
    path = write(
        tmp_path, "job.yaml", "version: 1\nchats:\n  - {chat: c1, account: a1, leav: true}\n"
    )
    (error,) = failures(path)
    assert isinstance(error, JobFileError)
    assert str(error) == f"{path}:3: chats[0].leav: unknown key 'leav' (expected one of " + (
        "account, add, chat, leave, members, protect, remove, rename)"
    )


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def test_unknown_keys_are_errors_at_every_level(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 1
        verison: 1
        defaults:
          acount: a1
        accounts:
          a1:
            rate: 1/s
            burst: 5
        chats:
          - chat: c1
            account: a1
            add: [u1]
            ad: [u2]
        """,
    )
    assert located(path) == [
        ("job.yaml", 2, "verison"),
        ("job.yaml", 4, "defaults.acount"),
        ("job.yaml", 8, "accounts.a1.burst"),
        ("job.yaml", 13, "chats[0].ad"),
    ]


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 1
        chats:
          - chat: c1
            account: a1
            add: [u1]
            add: [u2]
        version: 1
        """,
    )
    assert lines(path) == [
        "job.yaml:6: chats[0].add: duplicate key 'add' (first at line 5)",
        "job.yaml:7: version: duplicate key 'version' (first at line 1)",
    ]


def test_duplicate_account_keys_in_accounts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\naccounts:\n  a1: {rate: 1/s}\n  a1: {rate: 2/s}\n",
    )
    assert lines(path) == ["job.yaml:4: accounts.a1: duplicate key 'a1' (first at line 3)"]


def test_non_string_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "job.yaml", "version: 1\naccounts:\n  123: {rate: 1/s}\n")
    assert located(path) == [("job.yaml", 3, "accounts")]


# --------------------------------------------------------------------------------------------
# Anchors, aliases, tags
# --------------------------------------------------------------------------------------------


def test_anchors_and_aliases_are_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 1
        chats:
          - chat: c1
            account: a1
            add: &team [u1, u2]
          - chat: c2
            account: a1
            add: *team
        """,
    )
    assert lines(path) == [
        "job.yaml:5: chats[0].add: YAML anchors are not allowed (&team)",
        "job.yaml:8: chats[1].add: YAML aliases are not allowed (*team)",
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!str c1", "tag:yaml.org,2002:str"),
        ("!foo c1", "!foo"),
        ("! c1", "!"),
    ],
)
def test_any_explicit_tag_is_an_error(tmp_path: Path, value: str, shown: str) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        f"version: 1\nchats:\n  - account: a1\n    chat: {value}\n    leave: true\n",
    )
    assert lines(path) == [f"job.yaml:4: chats[0].chat: YAML tags are not allowed ({shown})"]


def test_python_object_tags_are_refused_and_never_built(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(
        tmp_path,
        "job.yaml",
        f"""\
        version: 1
        chats:
          - chat: c1
            account: a1
            add: !!python/object/apply:os.system ["touch {marker}"]
        """,
    )
    assert located(path) == [("job.yaml", 5, "chats[0].add")]
    assert not marker.exists()


def test_refusals_under_an_unknown_key_are_still_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "job.yaml", "version: 1\nextra:\n  x: &a 1\n")
    assert located(path) == [("job.yaml", 2, "extra"), ("job.yaml", 3, "file")]


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------


def test_wrong_types_each_reported_where_they_are(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 1
        accounts:
          a1:
            rate: 5
            write_rate: [1/s]
            daily_limit: 0
            max_members: "50"
          a2: {daily_limit: true, max_members: -3}
          a3: 7
        chats:
          - chat: c1
            account: a1
            add: u1
            remove: [u2, 42, [u3], null]
            rename: 12
            leave: "yes"
          - just a string
          - chat: c3
            account: a1
            leave: 1
        """,
    )
    assert located(path) == [
        ("job.yaml", 4, "accounts.a1.rate"),
        ("job.yaml", 5, "accounts.a1.write_rate"),
        ("job.yaml", 6, "accounts.a1.daily_limit"),
        ("job.yaml", 7, "accounts.a1.max_members"),
        ("job.yaml", 8, "accounts.a2.daily_limit"),
        ("job.yaml", 8, "accounts.a2.max_members"),
        ("job.yaml", 9, "accounts.a3"),
        ("job.yaml", 13, "chats[0].add"),
        ("job.yaml", 14, "chats[0].remove[1]"),
        ("job.yaml", 14, "chats[0].remove[2]"),
        ("job.yaml", 14, "chats[0].remove[3]"),
        ("job.yaml", 15, "chats[0].rename"),
        ("job.yaml", 16, "chats[0].leave"),
        ("job.yaml", 17, "chats[1]"),
        ("job.yaml", 20, "chats[2].leave"),
    ]


def test_numbers_where_ids_belong_ask_to_be_quoted(tmp_path: Path) -> None:
    path = write(
        tmp_path, "job.yaml", "version: 1\nchats:\n  - {chat: 0123, account: a1, leave: true}\n"
    )
    (message,) = lines(path)
    assert message.startswith(
        "job.yaml:3: chats[0].chat: expected chat id (a string), got an integer"
    )
    assert message.endswith("(quote it)")


def test_chats_must_be_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "job.yaml", "version: 1\nchats:\n  c1: {add: [u1]}\n")
    assert located(path) == [("job.yaml", 3, "chats")]


def test_leave_false_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\nchats:\n  - {chat: c1, account: a1, leave: false, add: [u1]}\n",
    )
    (chat,) = load_job(path).chats
    assert chat.leave is False


# --------------------------------------------------------------------------------------------
# Version
# --------------------------------------------------------------------------------------------


def test_missing_version_is_reported_at_the_top(tmp_path: Path) -> None:
    path = write(tmp_path, "job.yaml", "chats:\n  - {chat: c1, account: a1, leave: true}\n")
    assert lines(path) == ["job.yaml:1: version: missing: start the file with version: 1"]


@pytest.mark.parametrize("value", ["2", "'1'", "true", "1.0", "[1]"])
def test_only_version_1_is_read(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, "job.yaml", f"# comment\nversion: {value}\n")
    assert located(path) == [("job.yaml", 2, "version")]


# --------------------------------------------------------------------------------------------
# Chats
# --------------------------------------------------------------------------------------------


def test_a_chat_listed_twice_names_the_second_place_and_mentions_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 1
        defaults: {account: a1}
        chats:
          - chat: c1
            add: [u1]
          - chat: c1
            account: a2
            add: [u1]
          - chat: c1
            remove: [u2]
        """,
    )
    assert lines(path) == [
        f"job.yaml:9: chats[2].chat: chat 'c1' of account 'a1' is already listed at {path}:4"
    ]


@pytest.mark.parametrize("other", ["add", "remove"])
def test_members_with_add_or_remove_is_an_error(tmp_path: Path, other: str) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        f"""\
        version: 1
        chats:
          - chat: c1
            account: a1
            members: [u1]
            {other}: [u2]
        """,
    )
    assert lines(path) == [
        f"job.yaml:6: chats[0].{other}: {other} cannot be combined with members (line 5): "
        "a chat takes add/remove or a members list"
    ]


def test_a_user_both_added_and_removed_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 1
        chats:
          - chat: c1
            account: a1
            add: [u1, u2]
            remove:
              - u3
              - u2
        """,
    )
    assert lines(path) == ["job.yaml:8: chats[0].remove[1]: 'u2' is both added and removed"]


def test_a_user_twice_in_one_list_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\nchats:\n  - chat: c1\n    account: a1\n    members:\n      - u1\n      - u1\n",
    )
    assert lines(path) == ["job.yaml:7: chats[0].members[1]: 'u1' is listed twice in members"]


def test_a_user_may_be_both_member_and_protected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\nchats:\n  - {chat: c1, account: a1, members: [u1], protect: [u1]}\n",
    )
    (chat,) = load_job(path).chats
    assert chat.members == ("u1",)
    assert chat.protect == ("u1",)


def test_protect_without_members_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\nchats:\n  - chat: c1\n    account: a1\n    remove: [u1]\n    protect: [u1]\n",
    )
    assert located(path) == [("job.yaml", 6, "chats[0].protect")]


def test_a_chat_without_account_or_default_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "job.yaml", "version: 1\nchats:\n  - chat: c1\n    add: [u1]\n")
    assert lines(path) == [
        "job.yaml:3: chats[0].account: no account: give account: ID here or defaults.account "
        "in this file"
    ]


def test_defaults_account_fills_in_and_an_explicit_account_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\ndefaults: {account: a1}\nchats:\n  - {chat: c1, add: [u1]}\n"
        "  - {chat: c2, account: a2, add: [u1]}\n",
    )
    assert [(c.account, c.chat) for c in load_job(path).chats] == [("a1", "c1"), ("a2", "c2")]


def test_a_chat_without_id_or_action_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\nchats:\n  - account: a1\n    add: [u1]\n  - chat: c2\n    account: a1\n",
    )
    assert located(path) == [("job.yaml", 3, "chats[0].chat"), ("job.yaml", 5, "chats[1]")]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ('""', "must not be empty"),
        ('"   "', "must not be empty"),
        ('" Cohort"', "surrounding whitespace"),
        ('"Cohort\\n12"', "control character (U+000A)"),
    ],
)
def test_rename_needs_a_clean_non_empty_name(tmp_path: Path, name: str, problem: str) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        f"version: 1\nchats:\n  - chat: c1\n    account: a1\n    rename: {name}\n",
    )
    (message,) = lines(path)
    assert message.startswith("job.yaml:5: chats[0].rename: ")
    assert problem in message


def test_rename_keeps_emoji_and_inner_spaces(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        'version: 1\nchats:\n  - {chat: c1, account: a1, rename: "Team 👩\u200d💻 2025"}\n',
    )
    (chat,) = load_job(path).chats
    assert chat.rename == "Team 👩\u200d💻 2025"


# --------------------------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------------------------

BAD_IDS = [
    ('""', "must not be empty"),
    ('" u1"', "surrounding whitespace"),
    ('"u1\\t"', "surrounding whitespace"),
    ('"u\\u0000x"', "control or invisible character (U+0000)"),
    ('"u\\u200bx"', "control or invisible character (U+200B)"),
    ('"u\\x1fx"', "control or invisible character (U+001F)"),
    ("'.'", "is not a valid id"),
    ("'..'", "is not a valid id"),
]


@pytest.mark.parametrize(("value", "problem"), BAD_IDS)
@pytest.mark.parametrize(
    ("template", "line", "field"),
    [
        ("  - {{chat: {v}, account: a1, leave: true}}\n", 3, "chats[0].chat"),
        ("  - {{chat: c1, account: {v}, leave: true}}\n", 3, "chats[0].account"),
        (
            "  - chat: c1\n    account: a1\n    add:\n      - ok\n      - {v}\n",
            7,
            "chats[0].add[1]",
        ),
    ],
)
def test_bad_ids_are_errors(
    tmp_path: Path, value: str, problem: str, template: str, line: int, field: str
) -> None:
    path = write(tmp_path, "job.yaml", "version: 1\nchats:\n" + template.format(v=value))
    (error,) = failures(path)
    assert (error.line, error.field) == (line, field)
    assert problem in error.message


@pytest.mark.parametrize(("value", "problem"), BAD_IDS)
def test_bad_ids_as_account_keys_and_defaults(tmp_path: Path, value: str, problem: str) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        f"version: 1\ndefaults:\n  account: {value}\naccounts:\n  {value}: {{rate: 1/s}}\n",
    )
    errors = failures(path)
    assert len(errors) == 2
    assert (errors[0].line, errors[0].field) == (3, "defaults.account")
    assert errors[1].line == 5
    assert errors[1].field.startswith("accounts.")
    assert all(problem in e.message for e in errors)


def test_bad_rate_specs_are_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\naccounts:\n  a1:\n    rate: 0/s\n    write_rate: two per minute\n  a2: {rate: 20/10s, write_rate: 3/2min}\n",
    )
    assert lines(path) == [
        "job.yaml:4: accounts.a1.rate: a rate needs N > 0: '0/s'",
        "job.yaml:5: accounts.a1.write_rate: not a rate: 'two per minute' (expected N/s, "
        "N/min, N/h, N/d or N/<k><unit> such as 20/10s)",
    ]


# --------------------------------------------------------------------------------------------
# Whole files
# --------------------------------------------------------------------------------------------


def test_every_error_of_a_file_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        """\
        version: 3
        chats:
          - chat: c1
            account: a1
            add: [u1]
            remove: [u1]
          - chat: ..
            account: a1
            leave: maybe
          - chat: c3
            account: a1
            members: [u1]
            add: [u2]
            protect: [" u9"]
        """,
    )
    assert located(path) == [
        ("job.yaml", 1, "version"),
        ("job.yaml", 6, "chats[0].remove[0]"),
        ("job.yaml", 7, "chats[1].chat"),
        ("job.yaml", 9, "chats[1].leave"),
        ("job.yaml", 13, "chats[2].add"),
        ("job.yaml", 14, "chats[2].protect[0]"),
    ]


def test_long_values_are_quoted_to_80_characters(tmp_path: Path) -> None:
    long_id = "x" * 500 + " "
    path = write(
        tmp_path,
        "job.yaml",
        f'version: 1\nchats:\n  - {{chat: "{long_id}", account: a1, leave: true}}\n',
    )
    (error,) = failures(path)
    assert "x" * 80 in error.message
    assert "x" * 81 not in error.message
    assert len(error.message) < 140


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("", None, "empty"),
        ("   \n# only a comment\n", None, "empty"),
        ("- chat: c1\n", 1, "expected a mapping"),
        ("just text\n", 1, "expected a mapping"),
        ("version: 1\nchats: [\n", 3, "YAML syntax error"),
        ("version: 1\n---\nversion: 1\n", 2, "YAML syntax error"),
        ("version: 1\nchats:\n\t- x\n", 3, "YAML syntax error"),
        ("version: 1\nname: \x07\n", 2, "U+0007"),
    ],
)
def test_unreadable_yaml_is_a_clear_error(
    tmp_path: Path, content: str, line: int | None, fragment: str
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(content, encoding="utf-8")
    (error,) = failures(path)
    assert (error.line, error.field) == (line, "file")
    assert fragment in error.message


def test_a_tab_where_yaml_wants_spaces_is_named_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, "job.yaml", "version: 1\nchats:\n\t- chat: c1\n")
    (message,) = lines(path)
    assert message.startswith("job.yaml:3: file: YAML syntax error: ")
    assert message.endswith("(a tab: YAML indents with spaces)")


def test_an_error_found_at_the_end_says_where_what_it_ends_began(tmp_path: Path) -> None:
    # An unclosed quote is found only at the end of the file: the line it opened on is the one
    # to look at.
    path = write(
        tmp_path,
        "job.yaml",
        'version: 1\nchats:\n  - chat: "c1\n    account: a1\n    leave: true\n',
    )
    assert lines(path) == [
        "job.yaml:6: file: YAML syntax error: found unexpected end of stream, while scanning a "
        "quoted scalar that begins at line 3"
    ]


def test_non_utf8_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"version: 1\nchats:\n  - {chat: caf\xe9, account: a1, leave: true}\n")
    assert lines(path) == ["job.yaml:3: file: not UTF-8 text"]


def test_non_utf8_deep_in_a_big_file_names_the_line(tmp_path: Path) -> None:
    users = "".join(f"      - ACoAA{i:07d}\n" for i in range(150_000))  # over 3 MB
    head = "version: 1\nchats:\n  - chat: c1\n    account: a1\n    add:\n" + users
    path = tmp_path / "job.yaml"
    path.write_bytes(head.encode() + "      - caf\u00e9\n".encode() + b"      - caf\xe9\n")
    assert lines(path) == [f"job.yaml:{150_000 + 7}: file: not UTF-8 text"]


def test_non_utf8_after_a_bom_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\nchats:\n  - {chat: caf\xe9, account: a1}\n")
    assert lines(path) == ["job.yaml:3: file: not UTF-8 text"]


def test_a_bom_and_crlf_yaml_loads(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(
        b"\xef\xbb\xbfversion: 1\r\nchats:\r\n  - chat: c1\r\n    account: a1\r\n    add: [u1]\r\n"
    )
    (chat,) = load_job(path).chats
    assert (chat.chat, chat.add, chat.line) == ("c1", ("u1",), 3)


def test_errors_are_capped_per_file_with_a_count_of_the_rest(tmp_path: Path) -> None:
    users = "\n".join(f"      - ' u{i}'" for i in range(MAX_ERRORS_PER_FILE + 5))
    path = write(
        tmp_path,
        "job.yaml",
        f"version: 1\nchats:\n  - chat: c1\n    account: a1\n    add:\n{users}\n",
    )
    with pytest.raises(JobFileErrors) as caught:
        load_job(path)
    errors = caught.value.errors
    assert len(errors) == MAX_ERRORS_PER_FILE + 1
    assert errors[-1].message == "... and 5 more errors"
    assert str(errors[-1]) == f"{path}: file: ... and 5 more errors"


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------


def test_libyamls_parser_is_used_whenever_pyyaml_has_it() -> None:
    expected = "libyaml" if yaml.__with_libyaml__ else "pure Python"
    assert expected == yaml_events.PARSER_NAME


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_absurd_nesting_is_refused_at_once(tmp_path: Path, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    depth = 50_000
    path = write(tmp_path, "job.yaml", f"version: 1\nextra: {opening * depth}1{closing * depth}\n")
    (error,) = failures(path)
    assert (error.line, error.field) == (2, "file")
    assert "nest" in error.message


def test_a_big_yaml_list_loads_with_lines_and_interned_users(tmp_path: Path) -> None:
    users = [f"ACoAA{i:07d}" for i in range(20_000)]
    body = "".join(f"      - {user}\n" for user in users)
    path = write(
        tmp_path,
        "job.yaml",
        "version: 1\nchats:\n  - chat: c1\n    account: a1\n    members:\n" + body,
    )
    (chat,) = load_job(path).chats
    assert chat.members == tuple(users)
    assert chat.user_lines is not None
    assert chat.user_lines.line_of("members", 19_999) == 20_005
    assert chat.members[5] is sys.intern(users[5])
