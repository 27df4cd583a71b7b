"""Named failpoints for fault-injection tests (as etcd and TiKV have them).

``LINGJU_FAILPOINTS="consumer.after_commit=exit"`` makes the process die at that point, the
way a SIGKILL between two steps would. Unset (always, outside fault tests), a failpoint is a
dictionary lookup and nothing else.
"""

from __future__ import annotations

import os

_ACTIONS: dict[str, str] = {}
for item in filter(None, os.environ.get("LINGJU_FAILPOINTS", "").split(",")):
    name, _, action = item.partition("=")
    _ACTIONS[name.strip()] = action.strip() or "exit"


class FailpointError(RuntimeError):
    pass


def failpoint(name: str) -> None:
    action = _ACTIONS.get(name)
    if action is None:
        return
    if action == "exit":
        os._exit(70)  # no cleanup, no flush: like a crash
    raise FailpointError(name)
