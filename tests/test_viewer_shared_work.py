"""Issue 21, load: the per-result work scenes share (`viewer.scene.shared`) and the cheaper
per-node Viser path (`viewer.scene.nodes.skip_unchanged_poses_quickly`)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import viser
from viser import _messages

from page4d_viewer.viewer.scene.nodes import skip_unchanged_poses_quickly
from page4d_viewer.viewer.scene.shared import SharedWork


class FakeResult:
    """Stands for a Reconstruction: the cache only needs an object it can weakly reference."""


def fake_result() -> Any:
    return FakeResult()


def ask_at_once(work: SharedWork, result: Any, make, count: int) -> list:
    """`count` threads ask for one key at the same moment; what each got (or "raised")."""
    got: list = []
    start = threading.Barrier(count)

    def ask() -> None:
        start.wait()
        try:
            got.append(work.get(result, "key", make))
        except ValueError:
            got.append("raised")

    threads = [threading.Thread(target=ask) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return got


def test_scenes_asking_for_one_value_at_once_make_it_once() -> None:
    work, result, made = SharedWork(), fake_result(), []

    def make() -> int:
        made.append(1)
        time.sleep(0.2)  # long enough for the other threads to ask meanwhile
        return 5

    assert ask_at_once(work, result, make, 4) == [5, 5, 5, 5]
    assert len(made) == 1 and (work.misses, work.hits) == (1, 3)


def test_a_maker_that_raises_lets_a_waiter_make_it() -> None:
    work, result, tries = SharedWork(), fake_result(), []

    def make() -> int:
        tries.append(1)
        time.sleep(0.1)
        if len(tries) == 1:
            raise ValueError("the first make fails")
        return 7

    assert sorted(ask_at_once(work, result, make, 3), key=str) == [7, 7, "raised"]
    assert len(tries) == 2


def test_a_result_collected_while_the_lock_is_held_does_not_deadlock() -> None:
    """The finalizer may run in the thread holding the lock (a collection it started)."""
    work, result = SharedWork(), fake_result()
    work.get(result, "key", lambda: np.zeros(100))
    assert work.nbytes == 800
    finished = threading.Event()

    def collect_under_the_lock() -> None:
        with work._lock:
            work._forget(id(result))  # what weakref.finalize calls
        finished.set()

    threading.Thread(target=collect_under_the_lock, daemon=True).start()
    assert finished.wait(timeout=5)
    assert work.nbytes == 0


@pytest.fixture
def server():
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    yield server
    server.stop()


def test_poses_still_reach_the_client_after_the_quick_check(server: viser.ViserServer) -> None:
    from viser import _scene_handles

    skip_unchanged_poses_quickly()
    assert getattr(_scene_handles._set_pose_vector, "skips_equal_tuples", False)
    sent: list = []
    buffer = server._websock_server.get_message_buffer()
    push = buffer.push
    buffer.push = lambda message, *a, **k: (sent.append(message), push(message, *a, **k))[1]
    node = server.scene.add_frame("/node", position=(0.0, 0.0, 0.0))
    assert not any(isinstance(m, _messages.SetPositionMessage) for m in sent)  # the default
    node.position = (1.0, 2.0, 3.0)
    node.position = (1.0, 2.0, 3.0)  # unchanged: nothing sent
    node.wxyz = np.array([0.0, 1.0, 0.0, 0.0])  # an array goes through Viser's own check
    moved = [m for m in sent if isinstance(m, _messages.SetPositionMessage)]
    turned = [m for m in sent if isinstance(m, _messages.SetOrientationMessage)]
    assert [m.position for m in moved] == [(1.0, 2.0, 3.0)]
    assert [m.wxyz for m in turned] == [(0.0, 1.0, 0.0, 0.0)]
    np.testing.assert_array_equal(node.position, [1.0, 2.0, 3.0])
