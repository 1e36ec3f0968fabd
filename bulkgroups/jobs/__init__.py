"""Job files (YAML and CSV) into one immutable `Job`: pure, sync, offline.

A mistake in a job file must be caught before a single request is sent, and the user should fix
every mistake in one go, so loading never stops at the first problem: each one becomes a
`JobFileError` (`PATH:LINE: FIELD: message`) and `load_job` raises them all in `JobFileErrors`.

Decisions beyond the contract (each an error rather than a silent fix-up, because a job file that
means something other than it says is worse than one that does not load):
- A user listed twice in one list, a chat renamed or left twice (CSV rows), or a value in a CSV
  column its action does not use (`user` on rename/leave, `name` on anything but rename): a shifted
  column is caught rather than ignored.
- `protect` only together with `members`: with add/remove nothing is removed unless listed, so a
  protect list there would be a no-op that looks like a safeguard.
- A user may be both in `members` and in `protect` (consistent: wanted, and never removed).
- Ids are strings; YAML scalars that resolve to numbers, booleans or null are refused ("quote it")
  instead of being turned back into text that might differ from what was typed (`0123`, `1e3`).
- Rename names: a non-empty string without control characters or surrounding whitespace (LinkedIn
  keeps one trimmed line, so such a name would never compare equal and be renamed on every run).
- A chat entry with no action key at all (add, remove, rename, leave, members) is an error.
- `defaults.account` of a YAML file applies to the chats of that file. A CSV row with an empty
  account takes the `defaults.account` of the job's YAML files; if they disagree, that is an error.
- An account's settings may appear in one file of a job only; a file given twice is an error.
- Field paths count list items from 0 (`chats[0].add[1]`). Problems of a whole file are reported
  under the field `file`; those that have no line (missing, not a regular file, too big, empty,
  given twice) as `PATH: file: message`, without a line number rather than a made-up one.
- Only regular files are read (a FIFO, a device or a directory is refused at once, never read
  forever), up to `bulkgroups.files.JOB_FILE_LIMIT` bytes.
- At most `MAX_ERRORS_PER_FILE` errors per file are listed, then one line counting the rest, so a
  broken million-row export does not flood the terminal.
- `job_sha256` covers everything parsed (chats and account settings) but not paths, lines, key or
  file order; set-like lists are sorted, an empty `accounts.<id>` counts as absent.

The package: `load` (the job from its files), `yaml_file` and `csv_file` (one file each; YAML
walked on the parser's events, `yaml_events`, libyaml's C parser when present, with typed values
read by `yaml_values`), `users` (provider ids and LinkedIn profiles), `drafts` (a chat while
read), `checks` (ids and names), `report` (located errors), `source` (reading a file), `hashing`
(`job_sha256`), `owner` (the owner rule, located from what loading kept).
"""

from __future__ import annotations

from .csv_file import CSV_ACTIONS, CSV_COLUMNS
from .hashing import job_sha256
from .load import load_job
from .owner import locate_owner_rule
from .report import MAX_ERRORS_PER_FILE

__all__ = [
    "CSV_ACTIONS",
    "CSV_COLUMNS",
    "MAX_ERRORS_PER_FILE",
    "job_sha256",
    "load_job",
    "locate_owner_rule",
]
