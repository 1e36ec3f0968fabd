"""One rate grammar for flags, job files and the simulator: `N/s`, `N/min`, `N/h`, `N/d` and
`N/<k><unit>`; anything else is refused with a hint naming the accepted forms."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkgroups.jobs import load_job
from bulkgroups.model import RateSpec, parse_rate

from helpers.cli import Cli

FORMS = "expected N/s, N/min, N/h, N/d or N/<k><unit> such as 20/10s"


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("1/s", 1, 1.0),
        ("20/s", 20, 1.0),
        ("2/min", 2, 60.0),
        ("100/h", 100, 3600.0),
        ("200/d", 200, 86_400.0),
        ("20/10s", 20, 10.0),
        ("3/2min", 3, 120.0),
        ("5/12h", 5, 43_200.0),
        ("7/2d", 7, 172_800.0),
        ("1/0.5s", 1, 0.5),
        ("2/0.1s", 2, 0.1),
        ("1000000000/s", 10**9, 1.0),
    ],
)
def test_the_accepted_forms(text: str, count: int, period: float) -> None:
    assert parse_rate(text) == RateSpec(count, period)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("2/sec", "did you mean 2/s?"),
        ("2/seconds", "did you mean 2/s?"),
        ("2/m", "did you mean 2/min?"),
        ("2/minute", "did you mean 2/min?"),
        ("3/2minutes", "did you mean 3/2min?"),
        ("2/hour", "did you mean 2/h?"),
        ("2/day", "did you mean 2/d?"),
        ("1/ms", "milliseconds are not a unit: did you mean 1/0.001s?"),
        ("2/100ms", "milliseconds are not a unit: did you mean 2/0.1s?"),
        ("2 / s", "did you mean 2/s?"),
        ("2/S", "did you mean 2/s?"),
        ("fast", ""),
        ("2", ""),
        ("/s", ""),
        ("2/", ""),
        ("1.5/s", ""),
        ("-1/s", ""),
        ("2/s/s", ""),
        ("2/1e3s", ""),
        ("2/.5s", ""),
        ("", ""),
    ],
)
def test_anything_else_is_refused_naming_the_accepted_forms(text: str, hint: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_rate(text)
    message = str(refused.value)
    assert message.startswith(f"not a rate: {text!r} ({FORMS})")
    assert message.endswith(f"; {hint}" if hint else ")")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/s", "a rate needs N > 0: '0/s'"),
        ("2/0s", "a rate needs a period > 0: '2/0s'"),
        ("2/0.0min", "a rate needs a period > 0: '2/0.0min'"),
        ("1000000001/s", "a rate's N must be at most 1,000,000,000: '1000000001/s'"),
    ],
)
def test_a_rate_of_the_right_form_but_out_of_range_says_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_rate(text)


@given(
    count=st.integers(min_value=1, max_value=10**9),
    multiple=st.one_of(st.none(), st.integers(min_value=1, max_value=10_000)),
    unit=st.sampled_from(["s", "min", "h", "d"]),
)
def test_a_rate_prints_in_the_grammar_it_was_read_from(
    count: int, multiple: int | None, unit: str
) -> None:
    rate = parse_rate(f"{count}/{multiple or ''}{unit}")
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (RateSpec(2, 1.0), "2/s"),
        (RateSpec(2, 60.0), "2/min"),
        (RateSpec(3, 120.0), "3/2min"),
        (RateSpec(1, 10.0), "1/10s"),
        (RateSpec(2, 86_400.0), "2/d"),
        (RateSpec(1, 0.5), "1/0.5s"),
    ],
)
def test_a_rate_prints_in_its_largest_whole_unit(rate: RateSpec, shown: str) -> None:
    assert str(rate) == shown


# ------------------------------------------------------------------- the same grammar everywhere


@pytest.mark.parametrize("flag", ["--rate", "--write-rate"])
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_flag_refuses_a_rate_with_the_hint_before_anything_is_read(
    cli: Cli, tmp_path: Path, command: str, flag: str
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("version: 1\nchats:\n  - {chat: c1, account: acc_1, leave: true}\n")
    run = cli.run(command, job, "--sandbox", flag, "2/sec")
    assert run.code == 1
    assert f"argument {flag}: not a rate: '2/sec' ({FORMS}); did you mean 2/s?" in run.err
    assert "Traceback" not in run.err


def test_a_job_file_refuses_a_rate_with_the_hint_on_its_line(cli: Cli, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "accounts:\n"
        "  acc_1: {rate: 2/d, write_rate: 1/ms}\n"
        "chats:\n"
        "  - {chat: c1, account: acc_1, leave: true}\n"
    )
    run = cli.run("validate", job)
    assert run.code == 1
    assert run.err.splitlines() == [
        f"{job}:3: accounts.acc_1.write_rate: not a rate: '1/ms' ({FORMS}); "
        "milliseconds are not a unit: did you mean 1/0.001s?"
    ]


def test_a_job_file_takes_every_form(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "accounts:\n"
        "  acc_1: {rate: 20/10s, write_rate: 200/d}\n"
        "  acc_2: {rate: 1/0.5s, write_rate: 3/2min}\n"
        "chats:\n"
        "  - {chat: c1, account: acc_1, leave: true}\n"
    )
    accounts = load_job(job).accounts
    assert (accounts["acc_1"].rate, accounts["acc_1"].write_rate) == (
        RateSpec(20, 10.0),
        RateSpec(200, 86_400.0),
    )
    assert (accounts["acc_2"].rate, accounts["acc_2"].write_rate) == (
        RateSpec(1, 0.5),
        RateSpec(3, 120.0),
    )


def test_the_simulator_refuses_a_rate_with_the_hint(cli: Cli) -> None:
    run = cli.run("sandbox", "--port", "0", "--rate", "20/second")
    assert run.code == 1
    assert run.err.startswith(f"error: --rate: not a rate: '20/second' ({FORMS}); did you mean")
    assert run.out == ""
