"""The script a user would otherwise write: the baseline bulkgroups is compared with.

    python -m benchmarks.sequential JOB.csv BASE_URL KEY_FILE RATE_PER_SECOND

One request at a time, sleeping 1/rate after each (so no account, nor all of them together, ever
goes above the rate), no pacer, no retries, no ledger, no verification; standard library only.
For each chat of the CSV job (`account,chat,action,user,name`, adds and removes), in the file's
order: list its participants (every page), then remove the listed members the job removes and
add the users it adds that are not members yet. Any error answer stops the script (exit 1).

This is deliberately simple and honest rather than slow: it reads each chat once, skips what is
already done, and sends nothing bulkgroups would not (bulkgroups also reads the chat itself, looks
each account up and re-reads every chat it changed, to verify).
"""

from __future__ import annotations

import csv
import json
import sys
import time
import urllib.parse
import urllib.request
from typing import Any


def main(job: str, base_url: str, key_file: str, rate: float) -> int:
    with open(key_file, encoding="utf-8") as f:
        key = f.read().strip()
    pause = 1.0 / rate
    chats: dict[tuple[str, str], dict[str, list[str]]] = {}
    with open(job, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            lists = chats.setdefault((row["account"], row["chat"]), {"add": [], "remove": []})
            lists[row["action"]].append(row["user"])

    def call(method: str, path: str, body: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{base_url}/v2/{path}",
            data=data,
            method=method,
            headers={"X-API-KEY": key, "Accept": "application/json"}
            | ({"Content-Type": "application/json"} if data else {}),
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            payload = answer.read()
        time.sleep(pause)
        return json.loads(payload) if payload else None

    sent = 0
    for (account, chat), wanted in chats.items():
        base = f"{urllib.parse.quote(account, safe='')}/chats/{urllib.parse.quote(chat, safe='')}"
        members: set[str] = set()
        cursor: str | None = None
        while True:
            query = "limit=100" + (
                f"&cursor={urllib.parse.quote(cursor, safe='')}" if cursor else ""
            )
            page = call("GET", f"{base}/participants?{query}")
            sent += 1
            members.update(item["user"]["id"] for item in page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        for user in wanted["remove"]:
            if user in members:
                call("DELETE", f"{base}/participants/{urllib.parse.quote(user, safe='')}")
                sent += 1
        for user in wanted["add"]:
            if user not in members:
                call("POST", f"{base}/participants", {"user_id": user})
                sent += 1
    print(f"sent {sent} requests")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
