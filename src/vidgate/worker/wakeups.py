"""Wake-ups: telling a worker that a task became due now, so that it claims at once rather than at its
next idle tick (`worker.idle_poll_seconds`).

- In one process (`vidgate serve` with its embedded worker): the API's create, cancel and delete call
  `Runtime.wake_worker`, which is the worker's `Worker.wake` (api/app.py sets it).
- Across processes, on PostgreSQL: the transactions that make a task due (a group of creates, a client's
  cancel or delete, a task given back) send `NOTIFY vidgate_due` (`store.tasks.DUE_CHANNEL`), which the
  server delivers when they commit. Every worker process keeps one connection of its own that LISTENs
  (`listen_for_wakeups`) and wakes its worker at each notification. A lost connection is made again
  (after 0.5 s, doubling to 10 s), and the worker is woken once after every (re)connection for what was
  made meanwhile; until then the idle tick finds everything, as it always does.
- SQLite has no notifications: a worker in another process finds a new task at its idle tick.

`worker.wakeups = false` turns the PostgreSQL part off (no NOTIFY, no LISTEN).
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import structlog
from anyio.abc import TaskStatus
from sqlalchemy.engine import make_url

from vidgate.store.tasks import DUE_CHANNEL

log = structlog.get_logger("vidgate.worker")
RECONNECT_SECONDS = (0.5, 10.0)  # the first wait after a lost connection, and the longest
APPLICATION_NAME = "vidgate-wakeups"  # how the listening connection shows in pg_stat_activity


def listener_conninfo(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (`postgresql+psycopg://...`) as libpq takes it, named in
    pg_stat_activity, with TCP keepalives: a server that vanished without closing the connection is
    noticed within about a minute."""
    from psycopg.conninfo import make_conninfo

    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return make_conninfo(
        url,
        application_name=APPLICATION_NAME,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


async def listen_for_wakeups(
    database_url: str,
    wake: Callable[[], None],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """LISTEN on `DUE_CHANNEL` and call `wake` at every notification, until cancelled. Reports started
    once the first LISTEN is in place (or the first try to connect failed: the worker does not wait for
    the database to come back; the idle tick covers it meanwhile)."""
    import psycopg

    conninfo = listener_conninfo(database_url)
    wait = RECONNECT_SECONDS[0]
    started = lost = False
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            try:
                await conn.execute(f"LISTEN {DUE_CHANNEL}")
                if not started:
                    started = True
                    task_status.started()
                if lost:
                    log.info("listening for wake-ups again")
                lost, wait = False, RECONNECT_SECONDS[0]
                wake()  # what became due while nobody listened
                async for _ in conn.notifies():
                    wake()
            finally:
                # Shielded: when the worker stops, this task is cancelled, and `async with conn` would
                # have its exit's rollback cancelled too, skipping the close (the connection then stays
                # open until the garbage collector finds it).
                with anyio.CancelScope(shield=True):
                    await conn.close()
        except (psycopg.Error, OSError) as exc:
            if not lost:  # once per outage, not once per try
                log.warning(
                    "the wake-up connection is down; new tasks wait for the idle tick until it is back",
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
            lost = True
        if not started:
            started = True
            task_status.started()
        await anyio.sleep(wait)
        wait = min(wait * 2, RECONNECT_SECONDS[1])
