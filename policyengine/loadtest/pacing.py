"""Waking the open loop at each request's intended send time.

`asyncio.sleep` cannot do it at 1,000 requests/s: the selector's timeout is in whole milliseconds
(epoll_wait, and libuv's timers under uvloop), so a sleep of 0.3 ms wakes 1 ms later and the
requests in between leave together. Such bunches queue at the server, and their latency is counted
from the intended time, so the generator measures its own pacing. On Linux a timerfd armed with
the absolute deadline on CLOCK_MONOTONIC (the clock of `time.perf_counter` there) wakes the event
loop's epoll within microseconds; elsewhere the sleeping pacer wakes up to a millisecond early
instead and the request leaves then (it is timed from its actual send).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys
import time

_EARLY = 0.001  # seconds the sleeping pacer may wake before the intended time


class Pacer:
    """Sleeps on the event loop's timers: wakes up to a millisecond early, never a tick late."""

    async def until(self, due: float) -> None:
        delay = due - time.perf_counter()
        if delay > _EARLY:
            await asyncio.sleep(delay - _EARLY)

    def observe(self, late: float) -> None:
        """How late (seconds, negative when early) a request left; the sleeping pacer ignores it."""

    def close(self) -> None:
        pass


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
_MAX_LEAD = 0.0005  # seconds
_GAIN = 0.05


class TimerFdPacer(Pacer):
    """Arms a timerfd with each deadline and waits for the event loop to see it readable.

    The wake-up still costs the loop a turn (tens of microseconds, more on a busy machine): `lead`,
    learnt from how late requests actually left, arms the timer that much before the deadline.
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.POINTER(_Itimerspec),
        ]
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self._fd: int | None = fd
        self._spec = _Itimerspec()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.lead = 0.0

    async def until(self, due: float) -> None:
        assert self._fd is not None, "the pacer is closed"
        wake = due - self.lead
        if wake <= time.perf_counter():
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            loop.add_reader(self._fd, self._expired)
            self._loop = loop
        seconds = int(wake)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = int((wake - seconds) * 1e9)
        if self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime")
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def observe(self, late: float) -> None:
        # One request stuck behind a stalled server (or a full pool) is not the wake-up's cost:
        # a sample counts for at most the lead's own bound.
        late = min(_MAX_LEAD, max(-_MAX_LEAD, late))
        self.lead = min(_MAX_LEAD, max(0.0, self.lead + _GAIN * late))

    def close(self) -> None:
        if self._fd is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None

    def _expired(self) -> None:
        assert self._fd is not None
        try:
            os.read(self._fd, 8)  # the expiry count; reading it disarms readability
        except BlockingIOError:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def new_pacer() -> Pacer:
    """The timerfd pacer on Linux, the sleeping one elsewhere (or where timerfd is refused)."""
    if sys.platform.startswith("linux"):
        try:
            return TimerFdPacer()
        except (OSError, AttributeError):
            pass
    return Pacer()
