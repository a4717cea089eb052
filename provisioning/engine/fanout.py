"""Bounded concurrency for the per-item fabric calls of one step.

A step that makes the same call for each of many items (a DR step, one call per VM)
waits for the stamp once per item when it makes them one after another: at 50 ms a
call, 200 VMs wait 10 s per call they make. ``fan_out`` makes the calls on up to
``BUFFET_STEP_CONCURRENCY`` threads and hands each answer back to the step's own thread
as it comes, so that the step records it there, as it happens (Django's connections are
per thread: the calls must not touch the ORM). Each call keeps its own idempotency key,
so a retried or resumed step finds again the operations the stamp already ran.

``each_done`` is what most steps want: the answers of the calls that succeeded, then,
once every call has ended, the failure of those that did not (each one logged on the
step), so that a failure of some items leaves the others done and recorded and the step
is retried or resumed from there.
"""

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connections

from fabric.drivers import DriverError
from provisioning.engine.runner import INTERRUPTED

__all__ = ["Done", "each_done", "fan_out"]

T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    """One item's call, ended: its ``result``, or the ``error`` it raised."""

    item: T
    result: Any = None
    error: BaseException | None = None


def fan_out(items: Iterable[T], call: Callable[[T], Any], *,
            limit: int | None = None) -> Iterator[Done[T]]:
    """``call(item)`` for every item, at most ``limit`` at a time (default
    ``settings.BUFFET_STEP_CONCURRENCY``); yields each ``Done`` as it ends, in the order
    they end, on the caller's thread. Closing the iterator early cancels the calls not
    started and waits for those under way."""
    items = list(items)
    limit = max(1, limit or settings.BUFFET_STEP_CONCURRENCY)
    if limit == 1 or len(items) <= 1:
        for item in items:  # no thread for one call at a time
            yield _call(call, item)
        return
    pool = ThreadPoolExecutor(max_workers=min(limit, len(items)),
                              thread_name_prefix="step-call")
    try:
        pending: set[Future] = {pool.submit(_pooled, call, item) for item in items}
        while pending:
            ended, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in ended:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def each_done(ctx, items: Iterable[T], call: Callable[[T], Any], *,
              name: Callable[[T], str] = str,
              limit: int | None = None) -> Iterator[tuple[T, Any]]:
    """``(item, result)`` for each call that succeeded, as it ends; then, when some
    failed, raises one of their errors (each is logged on the step under ``name(item)``).

    The error raised is the one that decides what the engine does next: one that
    trying again will not help (the step fails at once), else a stamp restart (the step
    is asked again under the next keys), else a transient one (retried in place), the
    first item's in each kind. Its type and code are the call's own."""
    numbered = list(enumerate(items))
    failed: list[tuple[int, T, BaseException]] = []
    for done in fan_out(numbered, lambda entry: call(entry[1]), limit=limit):
        index, item = done.item
        if done.error is None:
            yield item, done.result
        else:
            failed.append((index, item, done.error))
    if not failed:
        return
    failed.sort(key=lambda entry: (_rank(entry[2]), entry[0]))
    for _, item, error in sorted(failed, key=lambda entry: entry[0]):
        ctx.log(f"{name(item)}: {error}")
    ctx.log(f"{len(failed)} of {len(numbered)} calls failed; the others are done")
    raise failed[0][2]


def _call(call: Callable[[T], Any], item: T) -> Done[T]:
    try:
        return Done(item, result=call(item))
    except Exception as exc:  # noqa: BLE001 - handed to the step's thread, which decides
        return Done(item, error=exc)


def _pooled(call: Callable[[T], Any], item: T) -> Done[T]:
    """``_call`` on a pool thread: a call that read the database after all (it should
    not: the step's thread records) leaves no connection open behind its thread."""
    try:
        return _call(call, item)
    finally:
        connections.close_all()


def _rank(error: BaseException) -> int:
    if not isinstance(error, DriverError):
        return 0  # a bug, or a refusal: trying again will not help
    if error.code == INTERRUPTED:
        return 1
    return 2 if error.transient else 0
