"""CSV job files: the export format, its header, its rows, and the YAML rules by physical line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bulkgroups.jobs import load_job
from bulkgroups.model import ChatJob

from helpers.jobs import failures, lines, located, write

HEADER = "account,chat,action,user,name\n"


def csv_file(tmp_path: Path, rows: str, name: str = "job.csv", header: str = HEADER) -> Path:
    return write(tmp_path, name, header + textwrap.dedent(rows))


def test_rows_of_one_chat_need_not_be_adjacent(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        """\
        a1,c1,add,u1,
        a1,c2,member,u5,
        a1,c1,remove,u2,
        a1,c3,leave,,
        a1,c2,protect,u6,
        a1,c1,rename,,"Cohort 12, spring"
        a1,c1,add,u3,
        a1,c2,member,u7,
        a2,c1,member,,
        """,
    )
    job = load_job(path)
    p = str(path)
    assert job.chats == (
        ChatJob(
            "a1", "c1", add=("u1", "u3"), remove=("u2",), rename="Cohort 12, spring", path=p, line=2
        ),
        ChatJob("a1", "c2", members=("u5", "u7"), protect=("u6",), path=p, line=3),
        ChatJob("a1", "c3", leave=True, path=p, line=5),
        ChatJob("a2", "c1", members=(), path=p, line=10),
    )


def test_the_header_may_come_in_any_order(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "add,u1,c1,a1,\n", header="action,user,chat,account,name\n")
    (chat,) = load_job(path).chats
    assert (chat.account, chat.chat, chat.add) == ("a1", "c1", ("u1",))


@pytest.mark.parametrize(
    "header",
    [
        "account,chat,action,user\n",
        "account,chat,action,user,name,extra\n",
        "account,chat,action,user,user\n",
        "Account,chat,action,user,name\n",
        "account, chat,action,user,name\n",
    ],
)
def test_the_header_must_be_exactly_the_five_columns(tmp_path: Path, header: str) -> None:
    path = csv_file(tmp_path, "a1,c1,add,u1,\n", header=header)
    (error,) = failures(path)
    assert (error.line, error.field) == (1, "file")
    assert "account,chat,action,user,name" in error.message


def test_bom_and_crlf_give_the_same_job_as_plain_lf(tmp_path: Path) -> None:
    rows = ["account,chat,action,user,name", "a1,c1,add,u1,", "a1,c1,rename,,New", "a1,c2,leave,,"]
    plain = tmp_path / "plain.csv"
    plain.write_bytes("\n".join(rows).encode() + b"\n")
    windows = tmp_path / "windows.csv"
    windows.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    a, b = load_job(plain), load_job(windows)
    assert [(c.account, c.chat, c.add, c.rename, c.leave, c.line) for c in a.chats] == [
        (c.account, c.chat, c.add, c.rename, c.leave, c.line) for c in b.chats
    ]
    assert a.sha256 == b.sha256


def test_crlf_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "job.csv"
    path.write_bytes(
        b"\xef\xbb\xbfaccount,chat,action,user,name\r\na1,c1,add,u1,\r\na1,c1,add, u2,\r\n"
    )
    assert located(path) == [("job.csv", 3, "user")]


def test_quoted_newlines_keep_physical_line_numbers(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        'a1,c1,rename,,"two\nlines"\na1,c1,add,u1,\na1,c1,add,,\n',
    )
    assert lines(path) == [
        "job.csv:2: name: the new name 'two\\nlines' contains a control character (U+000A)",
        "job.csv:5: user: user id must not be empty (add needs a user)",
    ]


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "\na1,c1,add,u1,\n\n\na1,c1,frob,u2,\n")
    assert located(path) == [("job.csv", 6, "action")]


def test_unknown_action_and_wrong_field_count(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a1,c1,Add,u1,\na1,c1,add,u1\na1,c1,add,u1,,\n")
    assert lines(path) == [
        "job.csv:2: action: unknown action 'Add' (expected one of add, remove, rename, leave, "
        "member, protect)",
        "job.csv:3: row: expected 5 fields, got 4",
        "job.csv:4: row: expected 5 fields, got 6",
    ]


@pytest.mark.parametrize("action", ["add", "remove", "protect"])
def test_user_is_required_for_user_actions(tmp_path: Path, action: str) -> None:
    path = csv_file(tmp_path, f"a1,c1,member,u0,\na1,c9,member,u0,\na1,c1,{action},,\n")
    assert lines(path) == [f"job.csv:4: user: user id must not be empty ({action} needs a user)"]


@pytest.mark.parametrize("action", ["rename", "leave"])
def test_rename_and_leave_take_no_user(tmp_path: Path, action: str) -> None:
    name = "New" if action == "rename" else ""
    path = csv_file(tmp_path, f"a1,c1,{action},u1,{name}\n")
    assert lines(path) == [f"job.csv:2: user: {action} takes no user, got 'u1'"]


def test_name_belongs_to_rename_only(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a1,c1,add,u1,Ann Lee\na1,c1,rename,,\n")
    assert lines(path) == [
        "job.csv:2: name: only rename uses name; add got 'Ann Lee'",
        "job.csv:3: name: the new name must not be empty",
    ]


def test_member_with_empty_user_declares_an_empty_list(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a1,c1,member,,\na1,c1,protect,u9,\n")
    (chat,) = load_job(path).chats
    assert chat.members == ()
    assert chat.protect == ("u9",)


def test_protect_without_member_rows_is_an_error(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a1,c1,add,u1,\na1,c1,protect,u9,\na1,c1,protect,u8,\n")
    assert located(path) == [("job.csv", 3, "action")]


def test_member_rows_and_add_remove_rows_do_not_mix(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "a1,c1,member,u1,\na1,c2,add,u1,\na1,c1,add,u2,\na1,c1,remove,u3,\na1,c2,member,u4,\n",
    )
    # Once per chat, at the first row that mixes, naming the row that set the kind of chat.
    assert lines(path) == [
        "job.csv:4: action: add rows cannot be mixed with member rows for one chat (line 2): "
        "a chat takes add/remove or a member list",
        "job.csv:6: action: member rows cannot be mixed with add/remove rows for one chat "
        "(line 3): a chat takes add/remove or a member list",
    ]


def test_a_user_both_added_and_removed_and_duplicates(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a1,c1,add,u1,\na1,c2,add,u1,\na1,c1,remove,u1,\na1,c1,add,u1,\n")
    assert lines(path) == [
        "job.csv:4: user: 'u1' is both added and removed",
        "job.csv:5: user: 'u1' is listed twice in add",
    ]


def test_a_chat_renamed_or_left_twice_is_an_error(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a1,c1,rename,,A\na1,c1,leave,,\na1,c1,rename,,B\na1,c1,leave,,\n")
    assert lines(path) == [
        "job.csv:4: action: the chat is already renamed at line 2",
        "job.csv:5: action: the chat already leaves at line 3",
    ]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (" a1,c1,add,u1,", "account"),
        ("a1,..,add,u1,", "chat"),
        ("a1,,add,u1,", "chat"),
        ("a1,c1,add,.,", "user"),
        ('a1,c1,add,"u\x01",', "user"),
        ("a1,c1,remove,u1 ,", "user"),
    ],
)
def test_bad_ids_name_their_column(tmp_path: Path, row: str, field: str) -> None:
    path = csv_file(tmp_path, "a1,c0,leave,,\n" + row + "\n")
    assert located(path) == [("job.csv", 3, field)]


def test_an_empty_account_without_any_yaml_default_is_an_error(tmp_path: Path) -> None:
    path = csv_file(tmp_path, ",c1,add,u1,\n")
    assert lines(path) == [
        "job.csv:2: account: empty, and no YAML file of this job sets defaults.account"
    ]


def test_an_empty_account_takes_defaults_account_from_a_yaml_of_the_job(tmp_path: Path) -> None:
    settings = write(tmp_path, "settings.yaml", "version: 1\ndefaults: {account: acc_main}\n")
    path = csv_file(tmp_path, ",c1,add,u1,\nacc_other,c1,add,u1,\n")
    job = load_job(path, settings)  # the CSV comes first on the command line: order does not matter
    assert [(c.account, c.chat) for c in job.chats] == [("acc_main", "c1"), ("acc_other", "c1")]


def test_yaml_files_with_different_defaults_make_an_empty_account_ambiguous(
    tmp_path: Path,
) -> None:
    one = write(tmp_path, "one.yaml", "version: 1\ndefaults: {account: a1}\n")
    two = write(tmp_path, "two.yaml", "version: 1\ndefaults: {account: a2}\n")
    path = csv_file(tmp_path, ",c1,add,u1,\n")
    (error,) = failures(one, two, path)
    assert (error.line, error.field) == (2, "account")
    assert "different defaults.account" in error.message


def test_all_errors_of_a_csv_are_reported(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "a1,c1,add,u1,\n,c2,add,u1,\na1,c3,kick,u1,\na1,c1,remove,u1,\na1,c4,protect,u1,\n",
    )
    assert located(path) == [
        ("job.csv", 3, "account"),
        ("job.csv", 4, "action"),
        ("job.csv", 5, "user"),
        ("job.csv", 6, "action"),
    ]


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (b"", None, "empty"),
        (b"\n\n", None, "empty"),
        (b"\naccount,chat,action,user,name\n", 1, "blank"),
        (b"account,chat,action,user,name\na1,c1,add,u1,\na1,c1,add,\xff\xfe,\n", 3, "UTF-8"),
        (
            b'account,chat,action,user,name\na1,c1,add,u1,\na1,"c2,add,u2,\na1,c3,add,u3,\n',
            3,
            "malformed",
        ),
    ],
)
def test_unreadable_csv_is_a_clear_error(
    tmp_path: Path, content: bytes, line: int | None, fragment: str
) -> None:
    path = tmp_path / "job.csv"
    path.write_bytes(content)
    (error,) = failures(path)
    assert (error.line, error.field) == (line, "file")
    assert fragment in error.message


def test_a_non_utf8_line_deep_in_a_big_file_is_found_exactly(tmp_path: Path) -> None:
    rows = b"".join(b"a1,c1,add,u%d,\n" % i for i in range(20_000))
    path = tmp_path / "job.csv"
    path.write_bytes(HEADER.encode() + rows + b"a1,c1,add,\xe9,\n")
    assert lines(path) == ["job.csv:20002: file: not UTF-8 text"]


def test_a_header_only_csv_is_an_empty_job(tmp_path: Path) -> None:
    assert load_job(csv_file(tmp_path, "")).chats == ()


def test_the_extension_selects_csv_case_insensitively(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a1,c1,add,u1,\n", name="EXPORT.CSV")
    assert load_job(path).chats[0].add == ("u1",)
