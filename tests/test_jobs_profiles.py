"""Members by LinkedIn profile: wherever a job names a user it may give a profile URL or
`in:<slug>`; each accepted form becomes one canonical `in:<slug>`, every other shape is an error
at PATH:LINE: FIELD, and a bare value stays a provider id."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkgroups.jobs import load_job, locate_owner_rule
from bulkgroups.model import (
    OwnerRuleViolation,
    is_profile,
    profile_display,
    profile_slug,
    profile_user,
)

from helpers.jobs import failures, lines, write

HEADER = "account,chat,action,user,name\n"

ACCEPTED = [
    ("https://www.linkedin.com/in/ann-kim-0161/", "in:ann-kim-0161"),
    ("https://www.linkedin.com/in/ann-kim-0161", "in:ann-kim-0161"),
    ("https://linkedin.com/in/ann-kim-0161/", "in:ann-kim-0161"),
    ("https://www.linkedin.com/in/ann-kim-0161/?trk=public_profile", "in:ann-kim-0161"),
    ("https://www.linkedin.com/in/ann-kim-0161/#experience", "in:ann-kim-0161"),
    ("http://www.linkedin.com/in/ann-kim-0161/", "in:ann-kim-0161"),
    ("https://uk.linkedin.com/in/ann-kim-0161", "in:ann-kim-0161"),
    ("https://m.linkedin.com/in/ann-kim-0161/", "in:ann-kim-0161"),
    ("www.linkedin.com/in/ann-kim-0161", "in:ann-kim-0161"),
    ("linkedin.com/in/Ann-Kim-0161/", "in:ann-kim-0161"),
    ("HTTPS://WWW.LINKEDIN.COM/IN/ANN-KIM-0161/", "in:ann-kim-0161"),
    ("in:ann-kim-0161", "in:ann-kim-0161"),
    ("in:Ann-Kim-0161", "in:ann-kim-0161"),
    ("in:ann_kim", "in:ann_kim"),
    ("https://www.linkedin.com/in/j%C3%BCrgen-m%C3%BCller/", "in:jürgen-müller"),
    ("in:jürgen-müller", "in:jürgen-müller"),
    ("in:ju\u0308rgen", "in:j\u00fcrgen"),  # decomposed ü: NFC
    ("https://www.linkedin.com/in/%E5%BC%A0%E4%BC%9F-a1b2/", "in:张伟-a1b2"),
]

REFUSED = [
    ("https://example.com/in/ann-kim", "is not a LinkedIn profile URL"),
    ("https://www.linkedin.com/company/acme/", "is not a LinkedIn profile URL"),
    ("https://www.linkedin.com/in/ann-kim/details/experience/", "is not a LinkedIn profile URL"),
    ("https://www.linkedin.com/pub/ann-kim/1/2/3", "is not a LinkedIn profile URL"),
    ("https://www.linkedin.com/in/", "is not a LinkedIn profile URL"),
    ("https://www.linkedin.com/", "is not a LinkedIn profile URL"),
    ("linkedin.com", "is not a LinkedIn profile URL"),
    ("ftp://linkedin.com/in/ann-kim", "is not a LinkedIn profile URL"),
    ("https://www.linkedin.com:8443/in/ann-kim", "is not a LinkedIn profile URL"),
    ("https://ann@linkedin.com/in/ann-kim", "is not a LinkedIn profile URL"),
    ("https://linkedin.com.example.net/in/ann-kim", "is not a LinkedIn profile URL"),
    ("https://www.example.com/?u=linkedin.com/in/ann-kim", "is not a LinkedIn profile URL"),
    ("https://[linkedin.com/in/ann-kim", "is not a LinkedIn profile URL"),
    ("https:linkedin.com/in/ann-kim", "is not a LinkedIn profile URL"),
    ("https://www.linkedin.com/in/ann kim/", "not ' '"),
    ("https://www.linkedin.com/in/ann.kim/", "not '.'"),
    ("in:ab", "3 to 100 characters, not 2"),
    ("in:", "3 to 100 characters, not 0"),
    ("in:" + "a" * 101, "3 to 100 characters, not 101"),
    ("in:ann.kim", "not '.'"),
    ("in:ann%ZZ", "not '%'"),
    ("in:%FF%FE-ann", "percent-encoded bytes are not UTF-8"),
    ("in:https://www.linkedin.com/in/ann-kim/", "not ':'"),
    ("Ann Kim", "contains a space"),
    ("mailto:ann@example.com", "starts with a scheme (mailto:)"),
    ("urn:li:fsd_profile:ACoAA0001", "starts with a scheme (urn:)"),
]


def yaml_job(tmp_path: Path, *users: str, key: str = "add") -> Path:
    items = "".join(f"      - {user!r}\n" for user in users)  # quoted: any text is a string
    return write(
        tmp_path,
        "job.yaml",
        f"version: 1\nchats:\n  - chat: c1\n    account: a1\n    {key}:\n{items}",
    )


def csv_job(tmp_path: Path, *users: str, action: str = "add") -> Path:
    rows = "".join(f'a1,c1,{action},"{user}",\n' for user in users)
    return write(tmp_path, "job.csv", HEADER + rows)


@pytest.mark.parametrize(("written", "canonical"), ACCEPTED)
def test_each_accepted_form_becomes_one_canonical_profile(
    tmp_path: Path, written: str, canonical: str
) -> None:
    (from_yaml,) = load_job(yaml_job(tmp_path, written)).chats
    (from_csv,) = load_job(csv_job(tmp_path, written)).chats
    assert from_yaml.add == from_csv.add == (canonical,)


@pytest.mark.parametrize(("written", "fragment"), REFUSED)
def test_other_shapes_are_errors_at_their_line_and_field(
    tmp_path: Path, written: str, fragment: str
) -> None:
    (in_yaml,) = failures(yaml_job(tmp_path, "ACoAA0001", written))
    assert (in_yaml.line, in_yaml.field) == (7, "chats[0].add[1]")
    assert fragment in in_yaml.message
    (in_csv,) = failures(csv_job(tmp_path, "ACoAA0001", written))
    assert (in_csv.line, in_csv.field) == (3, "user")
    assert in_csv.message == in_yaml.message


def test_a_bad_url_reads_as_path_line_field_message(tmp_path: Path) -> None:
    path = yaml_job(tmp_path, "https://www.linkedin.com/company/acme/", key="remove")
    assert lines(path) == [
        "job.yaml:6: chats[0].remove[0]: 'https://www.linkedin.com/company/acme/' is not a "
        "LinkedIn profile URL (expected https://www.linkedin.com/in/<slug>/)"
    ]


@pytest.mark.parametrize("provider_id", ["ACoAA0001", "ACoAAB-x_9", "acc.user", "u@x", "0xFF"])
def test_a_bare_value_stays_a_provider_id(tmp_path: Path, provider_id: str) -> None:
    (chat,) = load_job(yaml_job(tmp_path, provider_id)).chats
    assert chat.add == (provider_id,)
    assert not is_profile(chat.add[0])


@pytest.mark.parametrize("key", ["add", "remove", "members", "protect"])
def test_profiles_are_accepted_in_every_list_of_users(tmp_path: Path, key: str) -> None:
    path = write(
        tmp_path,
        "job.yaml",
        f"""\
        version: 1
        chats:
          - chat: c1
            account: a1
            {"members: [ACoAA0001]" if key == "protect" else "leave: true"}
            {key}:
              - https://www.linkedin.com/in/ann-kim-0161/
              - in:bo-lee
        """,
    )
    (chat,) = load_job(path).chats
    assert getattr(chat, key) == ("in:ann-kim-0161", "in:bo-lee")


def test_one_person_in_two_forms_is_listed_twice(tmp_path: Path) -> None:
    path = yaml_job(tmp_path, "in:ann-kim", "https://www.linkedin.com/in/Ann-Kim/?trk=x")
    assert lines(path) == ["job.yaml:7: chats[0].add[1]: 'in:ann-kim' is listed twice in add"]
    path = csv_job(tmp_path, "linkedin.com/in/ann-kim", "in:ANN-KIM", action="member")
    assert lines(path) == ["job.csv:3: user: 'in:ann-kim' is listed twice in members"]


def test_one_person_added_and_removed_in_two_forms_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.csv",
        HEADER + "a1,c1,add,in:ann-kim,\na1,c1,remove,https://uk.linkedin.com/in/ann-kim,\n",
    )
    assert lines(path) == ["job.csv:3: user: 'in:ann-kim' is both added and removed"]


def test_the_hash_is_the_same_whichever_form_names_a_person(tmp_path: Path) -> None:
    as_urls = load_job(
        yaml_job(tmp_path, "https://www.linkedin.com/in/ann-kim/", "http://linkedin.com/in/Bo-Lee")
    )
    as_slugs = load_job(csv_job(tmp_path, "in:bo-lee", "in:ann-kim"))
    assert as_urls.sha256 == as_slugs.sha256
    as_ids = load_job(csv_job(tmp_path, "ACoAA0001", "in:ann-kim"))
    assert as_ids.sha256 != as_urls.sha256


def test_the_owner_rule_locates_a_profile_where_its_form_was_written(tmp_path: Path) -> None:
    path = yaml_job(tmp_path, "ACoAA0001", "https://www.linkedin.com/in/Owner-Self/", key="remove")
    job = load_job(path)
    (error,) = locate_owner_rule(job, [OwnerRuleViolation("a1", "c1", "remove", "in:owner-self")])
    assert (error.line, error.field) == (7, "chats[0].remove[1]")
    assert "'in:owner-self' is the owner of account 'a1'" in error.message


def test_the_profile_helpers_give_the_slug_and_a_display_form() -> None:
    user = profile_user("ann-kim-0161")
    assert user == "in:ann-kim-0161"
    assert is_profile(user)
    assert profile_slug(user) == "ann-kim-0161"
    assert profile_display(user) == "linkedin.com/in/ann-kim-0161"
    assert profile_display("ACoAA0001") == "ACoAA0001"
    assert not is_profile("ACoAA0001")
    with pytest.raises(ValueError, match="not a profile"):
        profile_slug("ACoAA0001")
