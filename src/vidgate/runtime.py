"""The composition root: everything a process needs, built from Settings and closed in order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate import metrics
from vidgate.clock import Clock, SystemClock
from vidgate.config import Settings
from vidgate.domain.routing import Catalog
from vidgate.net.fetch import SafeFetcher
from vidgate.net.policy import FetchPolicy, Resolver, system_resolver
from vidgate.providers.registry import ProviderDeps, ProviderRegistry, catalog_from_settings, check_channels
from vidgate.providers.upstream_http import UpstreamHttp
from vidgate.ratelimit import RateLimiter, build_rate_limiter
from vidgate.store import db
from vidgate.store.attempts import AttemptStore
from vidgate.store.blobs import BlobStore, LocalBlobStore
from vidgate.store.channels import ChannelHealthStore
from vidgate.store.create_batch import SqliteCreateWriter
from vidgate.store.fast_reads import FastReads
from vidgate.store.keys import KeyStore
from vidgate.store.ledger import RefundPolicy
from vidgate.store.schema import prepare_database
from vidgate.store.tasks import TaskStore


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    tasks: TaskStore
    attempts: AttemptStore
    health: ChannelHealthStore
    keys: KeyStore
    blobs: BlobStore
    catalog: Catalog
    fetcher: SafeFetcher
    providers: ProviderRegistry
    clock: Clock
    resolver: Resolver  # DNS for user URLs (request-time checks and the fetcher's connect-time check)
    rate_limiter: RateLimiter  # per-key request and create rates (api/ratelimit.py)
    # Tells this process's worker (when it runs one) that something is due now; a no-op otherwise.
    wake_worker: Callable[[], None] = field(default=lambda: None)


def open_blob_store(settings: Settings) -> BlobStore:
    """S3 when `storage_url` names a bucket, else the local media directory. Called in the serving
    process only: obstore's client (and its Tokio runtime) must not be created before a fork."""
    if settings.storage_url:
        from vidgate.store.s3_blobs import S3BlobStore  # obstore is loaded only by those who use it

        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(settings.media_dir)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    resolver: Resolver | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Runtime]:
    """Everything a process needs. `clock` (tests) also drives lease decisions, which otherwise use
    the database's clock; `upstream_transport` (tests) replaces the network for every upstream channel."""
    check_channels(settings)
    metrics.configure(settings)  # before this process's first metric: see vidgate.metrics
    await prepare_database(settings)
    engine = db.create_engine(settings.resolved_database_url)
    reads = FastReads(settings.resolved_database_url, pool_size=settings.db_read_pool_size)
    writer_lock = db.sqlite_writer_lock(engine)
    creates = None
    if writer_lock is not None:
        creates = SqliteCreateWriter(make_url(settings.resolved_database_url).database or "", writer_lock)
    blobs = open_blob_store(settings)
    policy = FetchPolicy(allow_private=settings.fetch_allow_private)
    resolver = resolver or system_resolver
    fetcher = SafeFetcher(policy, resolver=resolver, timeout=settings.fetch_timeout_seconds)
    http = UpstreamHttp(upstream_transport)
    providers = ProviderRegistry(ProviderDeps(settings=settings, blobs=blobs, fetcher=fetcher, http=http))
    refunds = RefundPolicy.from_settings(
        refund_moderation=settings.billing.refund_moderation,
        charged_failures=settings.billing.charged_failures,
    )
    tasks = TaskStore(
        engine,
        clock=clock,
        reads=reads,
        creates=creates,
        refunds=refunds,
        notify_due=settings.worker.wakeups,
    )
    health = ChannelHealthStore(
        engine,
        tasks.queue_clock,
        failure_threshold=settings.worker.circuit_failures,
        cooldown_ms=round(settings.worker.circuit_cooldown_seconds * 1000),
    )
    rate_limiter = build_rate_limiter(settings)  # here, inside the running loop (see its docstring)
    try:
        yield Runtime(
            settings=settings,
            engine=engine,
            tasks=tasks,
            attempts=AttemptStore(engine, tasks.queue_clock),
            health=health,
            keys=KeyStore(engine, reads=reads, cache_seconds=settings.key_cache_seconds),
            blobs=blobs,
            catalog=catalog_from_settings(settings),
            fetcher=fetcher,
            providers=providers,
            clock=clock or SystemClock(),
            resolver=resolver,
            rate_limiter=rate_limiter,
        )
    finally:
        await rate_limiter.aclose()
        await providers.aclose()
        await fetcher.aclose()
        await reads.aclose()
        if creates is not None:
            creates.close()
        await engine.dispose()
