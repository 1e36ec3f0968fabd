"""`daily_limit` as a budget: chats claim their writes up front, every attempt spends one unit,
what a chat does not spend goes back. Pure: no run, no network."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bulkgroups.engine.budget import WriteBudget


def test_an_account_without_a_limit_always_has_budget() -> None:
    budget = WriteBudget({"acc_limited": 1})
    claim = budget.claim("acc_free", 1000)
    assert claim is not None
    assert all(budget.spend(claim) for _ in range(5000))
    assert budget.left("acc_free") is None


def test_a_chat_the_budget_cannot_finish_is_not_started() -> None:
    budget = WriteBudget({"acc": 3})
    assert budget.claim("acc", 4) is None
    assert budget.claim("acc", 3) is not None
    assert budget.claim("acc", 1) is None  # all of it is claimed by the first chat


def test_what_was_spent_or_written_earlier_today_is_not_there_to_claim() -> None:
    assert WriteBudget({"acc": 5 - 5}).claim("acc", 1) is None
    assert WriteBudget({"acc": 5 - 7}).left("acc") == 0  # over the limit already: nothing, not < 0


def test_each_attempt_spends_from_its_chats_claim_first() -> None:
    budget = WriteBudget({"acc": 4})
    first = budget.claim("acc", 2)
    second = budget.claim("acc", 2)
    assert first is not None and second is not None
    assert budget.spend(first) and budget.spend(first)
    # A retry of the first chat finds its claim spent and nothing unclaimed: it is not sent,
    # so the second chat can still finish.
    assert not budget.spend(first)
    assert budget.spend(second) and budget.spend(second)
    assert budget.left("acc") == 0


def test_a_retry_may_use_budget_no_chat_has_claimed() -> None:
    budget = WriteBudget({"acc": 3})
    claim = budget.claim("acc", 2)
    assert claim is not None
    assert budget.spend(claim) and budget.spend(claim)
    assert budget.spend(claim)  # the third unit was nobody's
    assert not budget.spend(claim)


def test_unspent_claims_are_released_for_later_chats() -> None:
    budget = WriteBudget({"acc": 3})
    claim = budget.claim("acc", 3)
    assert claim is not None and budget.spend(claim)
    assert budget.claim("acc", 2) is None
    budget.release(claim)
    assert budget.claim("acc", 2) is not None
    budget.release(claim)  # releasing twice gives nothing back twice
    assert budget.claim("acc", 1) is None


@given(
    limit=st.integers(min_value=0, max_value=30),
    chats=st.lists(
        st.tuples(st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=9)),
        max_size=12,
    ),
)
def test_never_more_attempts_than_the_limit_whatever_the_chats_and_retries(
    limit: int, chats: list[tuple[int, int]]
) -> None:
    budget = WriteBudget({"acc": limit})
    spent = 0
    for writes, attempts in chats:
        claim = budget.claim("acc", writes)
        if claim is None:
            continue
        spent += sum(1 for _ in range(attempts) if budget.spend(claim))
        budget.release(claim)
    assert spent <= limit
    assert budget.left("acc") == limit - spent


def test_a_chat_larger_than_the_whole_limit_claims_what_is_left_of_the_day() -> None:
    # Waiting for a day with room for all of it would wait forever: it goes as far as today allows.
    budget = WriteBudget({"acc": 3}, limits={"acc": 3})
    claim = budget.claim("acc", 5)
    assert claim is not None and claim.units == 3
    assert budget.claim("acc", 1) is None


def test_a_chat_that_fits_in_a_day_still_waits_for_a_day_with_room_for_all_of_it() -> None:
    budget = WriteBudget({"acc": 2}, limits={"acc": 30})
    assert budget.claim("acc", 3) is None
    assert budget.claim("acc", 2) is not None


def test_whether_an_attempt_could_spend_is_known_without_spending() -> None:
    budget = WriteBudget({"acc": 1})
    claim = budget.claim("acc", 1)
    assert claim is not None
    assert budget.available(claim) and budget.available(claim)
    assert budget.spend(claim)
    assert not budget.available(claim)
    assert budget.available(budget.claim("free", 1) or claim)
