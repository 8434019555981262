"""The page-build gate (issue 14): at most `slots` builds at once, the others in the order
they came, a live update's refresh before them."""

from __future__ import annotations

import threading
import time

from placeharm.web.app import BuildGate


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_at_most_slots_builds_at_once():
    gate = BuildGate(2)
    running, most = [0], [0]
    lock = threading.Lock()
    release = threading.Event()

    def build() -> None:
        with gate.slot():
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            release.wait(10)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=build) for _ in range(6)]
    for t in threads:
        t.start()
    _wait_for(lambda: len(gate._waiting) == 4)
    assert running[0] == 2
    release.set()
    for t in threads:
        t.join(10)
    assert most[0] == 2 and running[0] == 0 and gate._busy == 0


def test_waiting_builds_go_in_order_and_a_live_refresh_first():
    gate = BuildGate(1)
    order: list[str] = []
    first_in = threading.Event()
    let_go = threading.Event()

    def holder() -> None:
        with gate.slot():
            first_in.set()
            let_go.wait(10)

    def build(name: str, urgent: bool) -> None:
        with gate.slot(urgent=urgent):
            order.append(name)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert first_in.wait(10)
    for queued, (name, urgent) in enumerate(
        (("a", False), ("b", False), ("live", True), ("c", False)), start=1
    ):
        t = threading.Thread(target=build, args=(name, urgent))
        t.start()
        threads.append(t)
        _wait_for(lambda q=queued: len(gate._waiting) + len(gate._urgent) == q)
    let_go.set()
    for t in threads:
        t.join(10)
    assert order == ["live", "a", "b", "c"]
    assert gate._busy == 0
