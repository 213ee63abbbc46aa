"""Where AutoQ's DDPG updates run when they overlap an evaluation (``overlap_updates``).

The search hands a round of updates over *before* it evaluates the episode (:meth:`submit`,
with the replay batches already drawn) and collects it *after* (:meth:`result`), before the
episode's transitions are stored. Two ways to run the round, with identical results:

* :class:`ChildUpdates` (Linux): a forked child process trains the agent's own networks, which
  live in shared memory, so the parent sees every new weight without a copy. A worker *thread*
  does not overlap here: the updates and the evaluation are both long chains of small torch
  ops, each thread retakes the GIL between kernels, and the two end up taking turns (digits
  ResNet-20, idle 2-core machine: an evaluation takes 340 ms alone, 341 ms beside the 42
  updates in a child, 445 ms beside them on a thread). The child keeps its
  own Adam states; the ones a checkpoint needs come back with the round (``want_state``). It
  runs torch on 1 thread and ignores Ctrl-C (the parent ends it).
* :class:`InlineUpdates`: the same round run at once in this process (other platforms, one
  usable CPU, or a child that cannot be started) — same schedule and results, no overlap.

The child only pays off with a core the evaluation leaves free. On a machine whose cores are
all busy (other jobs, or torch running the evaluation on every core) the two processes take
turns and an episode gets slower than without overlap (5–32 % slower than HAQ's order in the
benchmark's runs that shared its 2 cores with other jobs); ``overlap_updates: false`` is then
the faster choice.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import sys
import time
import traceback
import warnings
from multiprocessing.connection import Connection
from typing import Any

import torch

from searchq.autoq.ddpg import DDPG, Batch

__all__ = ["ChildUpdates", "InlineUpdates", "start_updates"]


class InlineUpdates:
    """Runs each round when it is submitted, in this process."""

    def __init__(self, ddpg: DDPG) -> None:
        self.ddpg = ddpg
        self._done: tuple[dict[str, float], float] | None = None

    def submit(self, batches: Batch | None, *, want_state: bool = False) -> None:
        start = time.perf_counter()
        losses = self.ddpg.train(batches)
        self._done = (losses, time.perf_counter() - start)

    def result(self) -> tuple[dict[str, float], float]:
        """(losses of the round's last update, seconds the round took)."""
        assert self._done is not None, "result() without submit()"
        done, self._done = self._done, None
        return done

    def close(self) -> None:
        self._done = None


class ChildUpdates:
    """Runs each round in a forked child process on the agent's shared-memory networks."""

    def __init__(self, ddpg: DDPG) -> None:
        self.ddpg = ddpg
        for net in (ddpg.actor, ddpg.critic, ddpg.actor_target, ddpg.critic_target):
            net.share_memory()  # in place: optimizers and the acting path keep their tensors
        ctx = multiprocessing.get_context("fork")
        self._conn, child_end = ctx.Pipe()
        sys.stdout.flush()  # or the child may flush the parent's pending output a second time
        sys.stderr.flush()
        self._proc = ctx.Process(
            target=_serve, args=(ddpg, child_end, self._conn), name="autoq-updates", daemon=True
        )
        self._proc.start()
        child_end.close()
        self._pending = False

    def submit(self, batches: Batch | None, *, want_state: bool = False) -> None:
        assert not self._pending, "submit() twice without result()"
        arrays = None if batches is None else tuple(t.numpy() for t in batches)
        self._conn.send((arrays, want_state))
        self._pending = True

    def result(self) -> tuple[dict[str, float], float]:
        """(losses of the round's last update, seconds the round took in the child)."""
        assert self._pending, "result() without submit()"
        try:
            reply = self._conn.recv()
        except EOFError:
            self._proc.join(timeout=1.0)
            raise RuntimeError(
                f"the AutoQ update process died (exit code {self._proc.exitcode}); "
                "set overlap_updates to false to run the updates in this process"
            ) from None
        self._pending = False
        if reply[0] == "error":
            raise RuntimeError(f"the AutoQ update process failed:\n{reply[1]}")
        _, losses, seconds, state = reply
        if state is not None:  # the Adam states, for a checkpoint of the parent's agent
            opt = torch.load(io.BytesIO(state), weights_only=True)
            self.ddpg.actor_opt.load_state_dict(opt["actor_opt"])
            self.ddpg.critic_opt.load_state_dict(opt["critic_opt"])
        return losses, seconds

    def close(self) -> None:
        """End the child: politely when idle, at once when a round is still running (an
        exception is on its way up)."""
        if self._proc.is_alive():
            if self._pending:
                self._proc.terminate()
            else:
                try:
                    self._conn.send(None)
                except OSError:
                    self._proc.terminate()
            self._proc.join(timeout=10.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._conn.close()


Updates = InlineUpdates | ChildUpdates


def start_updates(ddpg: DDPG, *, child: bool | None = None) -> Updates:
    """A :class:`ChildUpdates` on Linux with at least 2 usable CPUs (``child=None``), else
    :class:`InlineUpdates`: on one CPU the two processes would only take turns."""
    if child is None:
        child = sys.platform == "linux" and len(os.sched_getaffinity(0)) >= 2
    if not child:
        return InlineUpdates(ddpg)
    try:
        return ChildUpdates(ddpg)
    except OSError as exc:  # e.g. no processes allowed: same results, no overlap
        warnings.warn(
            f"AutoQ runs its updates in this process (cannot start a child: {exc})",
            RuntimeWarning,
            stacklevel=2,
        )
        return InlineUpdates(ddpg)


def _serve(ddpg: DDPG, conn: Connection, parent_end: Connection) -> None:
    """The child's loop: a round per message until None (or the parent is gone)."""
    parent_end.close()  # so that the parent's death reads as end of file here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        arrays, want_state = message
        try:
            start = time.perf_counter()
            batches = None if arrays is None else tuple(torch.from_numpy(a) for a in arrays)
            losses = ddpg.train(batches)
            seconds = time.perf_counter() - start
            state = _optimizer_bytes(ddpg) if want_state else None
            conn.send(("ok", losses, seconds, state))
        except Exception:
            conn.send(("error", traceback.format_exc()))
            return


def _optimizer_bytes(ddpg: DDPG) -> bytes:
    buf = io.BytesIO()
    state: dict[str, Any] = {
        "actor_opt": ddpg.actor_opt.state_dict(),
        "critic_opt": ddpg.critic_opt.state_dict(),
    }
    torch.save(state, buf)
    return buf.getvalue()
