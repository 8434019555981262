"""Sign-ins wait for a password-hashing turn on the event loop, holding no worker thread.

services.auth.HashGate bounds hashing in any caller, but a caller waiting on it holds a
thread; a flood of sign-ins would then hold every worker thread and stall every page. Here
they wait as coroutines instead, at most `wait_s`, then get 503 (issue 12).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from placeharm.errors import Busy
from placeharm.services import auth


class SignInGate:
    """At most `slots` sign-ins hashing at once; the rest wait their turn, bounded."""

    def __init__(self, slots: int, wait_s: float = auth.HASH_WAIT_S) -> None:
        self.slots = slots
        self.wait_s = wait_s
        # one per event loop (a server has one; a test client may run several)
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.slots)
        try:
            async with asyncio.timeout(self.wait_s):
                await semaphore.acquire()
        except TimeoutError:
            raise Busy(auth.BUSY) from None
        try:
            yield
        finally:
            semaphore.release()
