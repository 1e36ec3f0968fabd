"""What `plan` prints for small and huge plans: chats without changes counted, not listed (unless
`--show-unchanged`); the summary of `--summary`, and of `auto` beyond its size, with a note; the
diff and the JSON written chat by chat to the stream, never built as one string."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from rich.console import Console

from bulkgroups.display import AUTO_SUMMARY_LINES, PlanView, render_plan, write_plan
from bulkgroups.model import ChatPlan, ErrorInfo, Operation, Outcome, Plan
from bulkgroups.planfile import plan_to_dict
from bulkgroups.planfile import write_plan as write_plan_json


def add(account: str, chat: str, user: str) -> Operation:
    return Operation(account, chat, "add", user=user)


def changing(account: str, chat: str, users: int) -> ChatPlan:
    return ChatPlan(
        account, chat, to_send=tuple(add(account, chat, f"ACoAA{n:04d}") for n in range(users))
    )


def unchanged(account: str, chat: str) -> ChatPlan:
    return ChatPlan(account, chat, in_place=3, chat_name=f"Group {chat}")


def refused(account: str, chat: str) -> ChatPlan:
    error = ErrorInfo(status=404, type="resource/not_found")
    return ChatPlan(
        account,
        chat,
        decided=(Outcome(Operation(account, chat, "leave"), "failed", "chat_not_found", 1, error),),
    )


MIXED = Plan(
    job_sha256="f" * 64,
    chats=(
        changing("acc_1", "team", 2),
        unchanged("acc_1", "quiet_1"),
        refused("acc_2", "gone_chat"),
        unchanged("acc_2", "quiet_2"),
    ),
    owners={"acc_1": "ACoAAowner1", "acc_2": "ACoAAowner2"},
)


class CountingStream(io.StringIO):
    """A text stream that remembers the size of each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def write(self, text: str) -> int:
        self.writes.append(len(text))
        return super().write(text)


def printed(plan: Plan, view: PlanView | None = None, *, seconds: float | None = None) -> str:
    return render_plan(plan, estimated_seconds=seconds, view=view or PlanView())


# ------------------------------------------------------------------------- unchanged chats


def test_chats_without_changes_are_counted_not_listed() -> None:
    text = printed(MIXED, seconds=90)
    assert "quiet" not in text
    assert text.splitlines() == [
        "acc_1 / team",
        "  + ACoAA0000",
        "  + ACoAA0001",
        "acc_2 / gone_chat",
        "  ! leave: failed chat_not_found (resource/not_found)",
        "",
        "2 chats without changes not shown (--show-unchanged lists them).",
        "Plan: 2 to add, 0 to remove, 0 to rename, 0 to leave in 1 of 4 chats; "
        "1 operation refused.",
        "At the configured rates, applying it takes about 1m 30s.",
    ]


def test_show_unchanged_lists_every_chat() -> None:
    lines = printed(MIXED, PlanView(show_unchanged=True)).splitlines()
    quiet = lines.index('acc_1 / quiet_1  "Group quiet_1"')
    assert lines[quiet + 1] == "  = 3 already in place"
    assert 'acc_2 / quiet_2  "Group quiet_2"' in lines
    assert not any("not shown" in line for line in lines)


def test_an_empty_plan_of_thirty_chats_is_two_lines_not_sixty() -> None:
    plan = Plan(job_sha256="e" * 64, chats=tuple(unchanged("acc_1", f"c{n}") for n in range(30)))
    assert printed(plan).splitlines() == [
        "30 chats without changes not shown (--show-unchanged lists them).",
        "Plan: 0 to add, 0 to remove, 0 to rename, 0 to leave in 0 of 30 chats.",
    ]


def test_a_job_without_chats_says_so() -> None:
    assert printed(Plan(job_sha256="e" * 64, chats=())) == (
        "Nothing to do: the job (or this shard of it) has no chats."
    )


# ---------------------------------------------------------------------------------- summary


def test_summary_shows_totals_per_account_instead_of_the_diff() -> None:
    text = printed(MIXED, PlanView(detail="summary"), seconds=90)
    assert "ACoAA0000" not in text and "acc_1 / team" not in text
    assert "only its summary is shown" not in text  # asked for: no note
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if "│" in line}
    #          chats add remove rename leave refused
    assert rows["acc_1"] == ["│", "1", "│", "2", "│", "0", "│", "0", "│", "0", "│", "0"]
    assert rows["acc_2"] == ["│", "1", "│", "0", "│", "0", "│", "0", "│", "0", "│", "1"]
    assert "Refused: 1 failed chat_not_found." in text
    assert text.splitlines()[-2:] == [
        "Plan: 2 to add, 0 to remove, 0 to rename, 0 to leave in 1 of 4 chats; "
        "1 operation refused.",
        "At the configured rates, applying it takes about 1m 30s.",
    ]


def huge_plan(operations: int) -> Plan:
    per_chat = 40
    return Plan(
        job_sha256="d" * 64,
        chats=tuple(
            changing(f"acc_{n % 7}", f"chat_{n}", per_chat) for n in range(operations // per_chat)
        ),
    )


def test_beyond_its_size_auto_shows_the_summary_with_a_note_on_how_to_see_all() -> None:
    plan = huge_plan(AUTO_SUMMARY_LINES + 40)
    lines = printed(plan).splitlines()
    assert lines[:3] == [
        f"The plan has {AUTO_SUMMARY_LINES + 40:,} operations: only its summary is shown.",
        "`--full` lists every chat; `--format json` or `--out PLAN.json` keeps all of it.",
        "",
    ]
    assert not any(line.startswith("  + ") for line in lines)
    assert lines[-1].startswith(f"Plan: {AUTO_SUMMARY_LINES + 40} to add")


def test_up_to_its_size_auto_lists_every_chat() -> None:
    lines = printed(huge_plan(AUTO_SUMMARY_LINES)).splitlines()
    assert sum(line.startswith("  + ") for line in lines) == AUTO_SUMMARY_LINES
    assert not any("summary" in line for line in lines)


def test_full_lists_every_chat_of_a_huge_plan() -> None:
    lines = printed(huge_plan(AUTO_SUMMARY_LINES * 2), PlanView(detail="full")).splitlines()
    assert sum(line.startswith("  + ") for line in lines) == AUTO_SUMMARY_LINES * 2


def test_a_summary_lists_the_busiest_fifty_accounts_and_counts_the_rest() -> None:
    plan = Plan(
        job_sha256="c" * 64, chats=tuple(changing(f"acc_{n:03d}", "team", n + 1) for n in range(60))
    )
    text = printed(plan, PlanView(detail="summary"))
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("acc_")]
    assert listed == [f"acc_{n:03d}" for n in range(59, 9, -1)]
    assert "... and 10 more accounts with changes." in text


# ------------------------------------------------------------------------------- streaming


def test_the_diff_is_written_chat_by_chat_not_as_one_string() -> None:
    plan = huge_plan(4_000)
    stream = CountingStream()
    console = Console(file=stream, width=80, color_system=None, force_terminal=False)
    write_plan(plan, console, view=PlanView(detail="full"))
    assert len(stream.writes) >= len(plan.chats)
    assert max(stream.writes) < 2_000  # one chat of 40 adds, not the whole plan
    assert stream.getvalue().count("\n  + ") == 4_000


def test_the_json_plan_is_written_chat_by_chat_as_the_document_it_describes() -> None:
    plan = huge_plan(4_000)
    writes: list[bytes] = []
    write_plan_json(plan, writes.append, estimated_seconds=12.3456)
    document = b"".join(writes)
    expected: Any = plan_to_dict(plan, estimated_seconds=12.3456)
    assert document == orjson.dumps(expected, option=orjson.OPT_INDENT_2) + b"\n"
    assert len(writes) >= len(plan.chats)
    assert max(len(w) for w in writes) < 20_000


@pytest.mark.parametrize(
    "plan", [MIXED, Plan(job_sha256="0" * 64, chats=())], ids=["mixed", "empty"]
)
def test_the_streamed_json_is_byte_for_byte_the_indented_document(plan: Plan) -> None:
    writes: list[bytes] = []
    write_plan_json(plan, writes.append)
    assert b"".join(writes) == orjson.dumps(plan_to_dict(plan), option=orjson.OPT_INDENT_2) + b"\n"


# --------------------------------------------------------------- what the server names things


HOSTILE_NAME = "Team\n  + ACoAA0666 (Trusted Admin)\x1b[2J\u202e"


def test_names_from_the_server_cannot_forge_plan_lines_or_drive_the_terminal() -> None:
    # Any member of a LinkedIn group may rename it, and people choose their display names: a
    # newline would add a line of its own making to the plan a person confirms, an escape
    # sequence would move or clear what the terminal shows.
    chat = ChatPlan(
        "acc_1",
        "team",
        to_send=(
            Operation("acc_1", "team", "rename", name="Team 2025"),
            Operation("acc_1", "team", "remove", user="ACoAA0001"),
        ),
        decided=(
            Outcome(
                Operation("acc_1", "team", "add", user="ACoAA0002"),
                "failed",
                "api_error",
                1,
                ErrorInfo(status=400, type="api/bad\nrequest\x1b[0m"),
            ),
        ),
        names={"ACoAA0001": HOSTILE_NAME},
        chat_name=HOSTILE_NAME,
    )
    lines = render_plan(Plan(job_sha256="a" * 64, chats=(chat,))).splitlines()
    assert lines[:4] == [
        'acc_1 / team  "Team\\n  + ACoAA0666 (Trusted Admin)\\x1b[2J\\u202e"',
        '  ~ name "Team\\n  + ACoAA0666 (Trusted Admin)\\x1b[2J\\u202e" -> "Team 2025"',
        "  - ACoAA0001 (Team\\n  + ACoAA0666 (Trusted Admin)\\x1b[2J\\u202e)",
        "  ! add ACoAA0002: failed api_error (api/bad\\nrequest\\x1b[0m)",
    ]
    assert not any(line.startswith("  + ") for line in lines)


def test_names_in_any_script_and_emoji_are_shown_as_they_are() -> None:
    name = "Équipe 東京 👩‍👩‍👧"  # the family emoji is joined by U+200D, a format character
    chat = ChatPlan(
        "acc_1",
        "team",
        to_send=(Operation("acc_1", "team", "remove", user="ACoAA0001"),),
        names={"ACoAA0001": name},
        chat_name=name,
    )
    lines = render_plan(Plan(job_sha256="a" * 64, chats=(chat,))).splitlines()
    assert lines[:2] == [f'acc_1 / team  "{name}"', f"  - ACoAA0001 ({name})"]
