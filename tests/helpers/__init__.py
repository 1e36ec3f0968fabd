"""What the tests share besides fixtures (those are in tests/conftest.py): plain types and
functions, imported as `from helpers.<module> import ...` (pytest puts tests/ on sys.path).

- `simulator`: `SimFactory` (the type of the `sim_factory` fixture) and `Http`, plain requests.
- `engine`: job files written for real, ledgers read back.
- `jobs`: a job file written, loaded, and its errors read as the user sees them.
- `outcomes`: a fast engine configuration and `Bystander`, a client with someone acting meanwhile.
- `cli`: `Cli`, the `bulkgroups` command run in-process, and the flags pointing it at a simulator.
- `processes`: `bulkgroups apply` as a real process, signalled or killed mid-run.
- `killloop`: the kill -9 loop of test_kill9.py and `make soak`.
- `terminal`: `bulkgroups` at a pseudo-terminal, and the screen a person is left looking at.
- `hostile`: a tiny server misbehaving on purpose, for the client's limits.
- `windows`: the most requests any rate window holds.
- `servers`: a standard-library server run in a thread for the length of a `with`.
- `proxy`: a forward HTTP proxy on 127.0.0.1 that relays to loopback only and refuses tunnels.
- `loopback`: the suite's network fence (this process resolves and connects to loopback only).
"""
