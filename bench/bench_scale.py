"""Scaling table: tokens/s, p99, memory and start-up time with many clients; PostgreSQL; a soak.

Three sections, each a table in ``results/scale.md``:

1. **Registry size.** One fresh SQLite home per size (default 1,000 and 100,000 clients),
   registered with ``register_clients.py`` (two clients through the admin layer, the rest as
   bulk copies of their rows: see that script for why). For each worker count the servers of
   all sizes are started one after the other (start-up time = process start to the first 200 on
   ``POST /token``) and then loaded in turn, size A, size B, A, B, ... (``--repeats`` each):
   wrk, 64 connections, ES256, client_secret_basic, every request from a client chosen at random
   among ``--active`` (default 1,000) registered clients spread over the whole id range
   (``wrk_token_rotate.lua``), so that the lookup cost shows. Memory (RSS and PSS of the
   server's process tree) is read once ready and again after the load.
2. **Two instances on PostgreSQL.** A throwaway PostgreSQL cluster (Debian's binaries, as the
   test suite starts it: ``tests/support/postgres.py``), one database, ``--pg-clients``
   clients, two ``tokenward serve`` instances (``--pg-workers`` each, ``auto_migrate`` off),
   each loaded by its own wrk with half the connections at the same time.
3. **Soak.** The largest SQLite home, ``--soak-workers`` workers: a full-speed run measures the
   peak, then wrk holds ``--soak-fraction`` (default half) of that rate for ``--soak`` seconds
   (default 600) in back-to-back ``--sample-every`` (30 s) runs: each sample gives tokens/s,
   p50, p99 and the memory, so flat memory and a stable p99 (or not) are visible. The rate is
   held by ``wrk_token_rotate.lua``'s ``delay()`` schedule (Debian has no wrk2; see that script
   for what its latency does and does not include).

    python bench/bench_scale.py                       # everything; about 16 minutes
    python bench/bench_scale.py --quick               # 1,000 and 5,000 clients, short runs,
                                                      # a 30 s soak: a smoke test
    python bench/bench_scale.py --sections registry --sizes 1000 100000 --workers 1

Exit status: 0 when every response was a 200 and every server stayed up, 1 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import math
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import bench_token as bt
from served import Memory, Served, TokenRequest, ensure_tools, median, spread

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

DEFAULT_OUT = bt.BENCH_DIR / "results" / "scale.md"
LUA_ROTATE = bt.BENCH_DIR / "wrk_token_rotate.lua"
REGISTER = bt.BENCH_DIR / "register_clients.py"
API = bt.APIS["es256"]
BODY = f"grant_type=client_credentials&scope={API.scope}"
SECTIONS = ("registry", "postgres", "soak")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- installations -------------------------------------------------------------------------------


@dataclass
class PgHome(bt.Home):
    """A tokenward installation on PostgreSQL: the pepper and key-encryption key are set."""

    database_url: str = ""
    pepper: str = field(default_factory=lambda: secrets.token_hex(32))
    key_encryption_key: str = field(default_factory=lambda: secrets.token_hex(32))

    def environ(self, issuer: str = "http://127.0.0.1:8000") -> dict[str, str]:
        env = super().environ(issuer)
        env.pop("TOKENWARD_SECRETS_FILE", None)
        env["TOKENWARD_DATABASE_URL"] = self.database_url
        env["TOKENWARD_PEPPER"] = self.pepper
        env["TOKENWARD_KEY_ENCRYPTION_KEY"] = self.key_encryption_key
        env.update(self.server_env)
        return env


@dataclass
class Installation:
    """A home with ``clients`` registered and the credentials file of the active ones."""

    home: bt.Home
    clients: int
    creds: Path
    first_basic: str
    register_seconds: float
    bulk_seconds: float


def install(home: bt.Home, clients: int, active: int) -> Installation:
    """Create the ES256 API with the CLI, then register ``clients`` clients."""
    home.path.mkdir(parents=True, exist_ok=True)
    bt.create_api(home, API)
    creds = home.path / "creds.txt"
    log(f"  registering {clients:,} clients in {home.path}")
    proc = subprocess.run(
        [
            *(sys.executable, str(REGISTER), "--count", str(clients), "--scope", API.scope),
            *("--active", str(active), "--creds", str(creds)),
        ],
        env=home.environ(),
        cwd=home.path,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise bt.BenchError(f"register_clients.py failed:\n{proc.stderr[-3000:]}")
    timing = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"  registered in {timing['total_seconds']:.1f} s (bulk {timing['bulk_seconds']:.1f} s)")
    first = creds.read_text().split("\n", 1)[0]
    return Installation(
        home, clients, creds, first, timing["total_seconds"], timing["bulk_seconds"]
    )


def start_tokenward(
    inst: Installation,
    *,
    workers: int,
    cpus: str | None,
    reaper: bt.Reaper,
    tag: str,
    issuer: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Served:
    port = bt.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tokenward", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    served = Served(
        f"tokenward ({tag})",
        command,
        env={**inst.home.environ(issuer or url), **(extra_env or {})},
        cwd=inst.home.path,
        cpus=cpus,
        log_path=inst.home.path / f"server-{tag}-{port}.log",
        reaper=reaper,
        request=TokenRequest(f"{url}/token", inst.first_basic, BODY),
        workers=workers,
    )
    startup = served.wait_ready()
    log(f"  {served.name}: first 200 on /token {startup:.2f} s after start")
    return served


# -- load ----------------------------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    warmup: float
    conns: int
    threads: int
    repeats: int
    idle_wait: float
    noise: float


def load(
    served: Served,
    inst: Installation,
    opts: Options,
    *,
    seconds: float,
    conns: int,
    wrk_cpus: str | None,
    rate: float = 0.0,
) -> bt.WrkRun:
    env = {"TW_CREDS": str(inst.creds), "TW_BODY": BODY, "TW_THREADS": str(opts.threads)}
    if rate > 0:
        env["TW_RATE"] = f"{rate:.0f}"
    return bt.run_wrk(
        url=served.request.url,
        lua=LUA_ROTATE,
        env=env,
        conns=conns,
        threads=opts.threads,
        seconds=seconds,
        cpus=wrk_cpus,
        server_pids=served.pids(),
        reaper=served.reaper,
    )


def errors_of(runs: Sequence[bt.WrkRun]) -> int:
    return sum(r.non2xx + sum(r.socket_errors.values()) for r in runs)


def describe(run: bt.WrkRun) -> str:
    return (
        f"{run.rps:>8,.0f} tokens/s  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:7.2f} ms  "
        f"{run.cpu_us_per_request:4.0f} µs CPU/token  other {run.other_cores:.2f}  "
        f"errors {errors_of([run])}"
    )


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


# -- section 1: registry size --------------------------------------------------------------------


@dataclass
class SizeCell:
    inst: Installation
    workers: int
    runs: list[bt.WrkRun] = field(default_factory=list)
    startup: float = 0.0
    idle: Memory | None = None
    loaded: Memory | None = None
    failed: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed is None and errors_of(self.runs) == 0


def warm_and_load(
    served: Served, inst: Installation, opts: Options, where: bt.Placement
) -> bt.WrkRun:
    """A warm-up, then one measured run at full speed."""
    if opts.warmup > 0:
        load(served, inst, opts, seconds=opts.warmup, conns=opts.conns, wrk_cpus=where.wrk_cpus)
    return load(
        served, inst, opts, seconds=opts.duration, conns=opts.conns, wrk_cpus=where.wrk_cpus
    )


def _measure(cell: SizeCell, served: Served, opts: Options, where: bt.Placement) -> None:
    idle = bt.wait_until_idle(opts.idle_wait, opts.noise)
    if idle >= opts.noise:
        log(f"    machine busy ({idle:.2f} cores) after {opts.idle_wait:g} s; running anyway")
    try:
        run = warm_and_load(served, cell.inst, opts, where)
    except bt.BenchError as exc:
        cell.failed = str(exc)
        log(f"    FAILED: {exc}")
        return
    cell.runs.append(run)
    log(f"    {cell.inst.clients:>9,} clients {describe(run)}")
    scan = served.scan_log()
    if not scan.clean:
        cell.notes.append(f"server log: {scan.summary()}")
    if not served.alive():
        cell.failed = "the server exited during the run"


def run_registry(
    insts: Sequence[Installation],
    workers_list: Sequence[int],
    opts: Options,
    cpus: Sequence[int],
    reaper: bt.Reaper,
) -> list[SizeCell]:
    cells: list[SizeCell] = []
    for workers in workers_list:
        where = bt.placement(workers, cpus)
        log(f"registry size, {workers} worker(s): {where.note}")
        group = [SizeCell(inst, workers) for inst in insts]
        running: dict[int, Served] = {}
        try:
            for index, cell in enumerate(group):
                try:
                    served = start_tokenward(
                        cell.inst,
                        workers=workers,
                        cpus=where.server_cpus,
                        reaper=reaper,
                        tag=f"{cell.inst.clients}-{workers}w",
                    )
                except bt.BenchError as exc:
                    cell.failed = str(exc)
                    continue
                running[index] = served
                cell.startup = served.startup_seconds
                cell.idle = served.memory()
            for rep in range(opts.repeats):
                log(f"  run {rep + 1} of {opts.repeats}")
                for index, cell in enumerate(group):
                    if index in running and cell.failed is None:
                        _measure(cell, running[index], opts, where)
            for index, served in running.items():
                group[index].loaded = served.memory()
        finally:
            for served in running.values():
                served.stop()
        cells += group
    return cells


def registry_table(cells: Sequence[SizeCell]) -> str:
    lines = [
        "| clients | workers | tokens/s (median) | worst - best | p50 | p99 (median) "
        "| p99 worst | server CPU µs/token | start-up (to first 200) | RSS ready | RSS loaded "
        "| PSS loaded | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        head = f"| {c.inst.clients:,} | {c.workers} "
        if not c.runs:
            lines.append(head + "| FAILED (see notes) |" + " |" * 10)
            continue
        rps = [r.rps for r in c.runs]
        p99 = [r.p99_ms for r in c.runs]
        idle = f"{c.idle.rss_mib:.0f} MiB" if c.idle else "n/a"
        rss = f"{c.loaded.rss_mib:.0f} MiB" if c.loaded else "n/a"
        pss = f"{c.loaded.pss_mib:.0f} MiB" if c.loaded else "n/a"
        flag = "" if c.ok else " (!)"
        lines.append(
            head + f"| {median(rps):,.0f} | {min(rps):,.0f} - {max(rps):,.0f} "
            f"| {_ms(median([r.p50_ms for r in c.runs]))} | {_ms(median(p99))} | {_ms(max(p99))} "
            f"| {median([r.cpu_us_per_request for r in c.runs]):.0f} | {c.startup:.2f} s "
            f"| {idle} | {rss} | {pss} | {errors_of(c.runs)}{flag} |"
        )
    return "\n".join(lines)


def registry_notes(cells: Sequence[SizeCell]) -> list[str]:
    out: list[str] = []
    for workers in sorted({c.workers for c in cells}):
        group = sorted(
            (c for c in cells if c.workers == workers and c.runs), key=lambda c: c.inst.clients
        )
        if len(group) < 2:
            continue
        small, large = group[0], group[-1]
        cpu_small = median([r.cpu_us_per_request for r in small.runs])
        cpu_large = median([r.cpu_us_per_request for r in large.runs])
        text = (
            f"{workers} worker(s): {large.inst.clients:,} against {small.inst.clients:,} clients: "
            f"server CPU per token x{cpu_large / cpu_small:.2f}"
            if cpu_small
            else ""
        )
        if small.idle and large.idle:
            extra = large.inst.clients - small.inst.clients
            per_client = (large.idle.pss - small.idle.pss) / extra
            text += (
                f"; memory when ready +{(large.idle.pss - small.idle.pss) / 2**20:.0f} MiB PSS "
                f"(about {per_client:,.0f} bytes per client over the whole process tree); "
                f"start-up {small.startup:.2f} s and {large.startup:.2f} s"
            )
        out.append(text + ".")
    for c in cells:
        where = f"{c.inst.clients:,} clients, {c.workers} worker(s)"
        if c.failed:
            out.append(f"{where}: FAILED: {c.failed}")
        spread_text = f"{spread([r.rps for r in c.runs]):.0%}" if c.runs else "n/a"
        out.append(
            f"{where}: run-to-run spread {spread_text}; registered in "
            f"{c.inst.register_seconds:.1f} s (bulk copy {c.inst.bulk_seconds:.1f} s)."
        )
        out.extend(f"{where}: {n}" for n in dict.fromkeys(c.notes))
    return out


# -- section 2: two instances on PostgreSQL ------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer]:
    """The test suite's throwaway PostgreSQL cluster (initdb + pg_ctl, loopback, no fsync)."""
    if str(bt.REPO_DIR) not in sys.path:
        sys.path.insert(0, str(bt.REPO_DIR))
    from tests.support.postgres import postgres_server

    with postgres_server() as server:
        yield server


@dataclass
class PgResult:
    clients: int
    workers: int
    instances: list[SizeCell] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    skipped: str | None = None
    failed: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None and all(c.ok for c in self.instances)


def _pair_run(
    pair: Sequence[tuple[SizeCell, Served]], opts: Options, seconds: float
) -> list[bt.WrkRun]:
    share = max(opts.conns // len(pair), opts.threads)
    with concurrent.futures.ThreadPoolExecutor(len(pair)) as pool:
        futures = [
            pool.submit(load, served, cell.inst, opts, seconds=seconds, conns=share, wrk_cpus=None)
            for cell, served in pair
        ]
        return [f.result() for f in futures]


def run_postgres(
    clients: int, workers: int, active: int, opts: Options, reaper: bt.Reaper, workdir: Path
) -> PgResult:
    result = PgResult(clients, workers)
    log(f"two instances on PostgreSQL, {clients:,} clients, {workers} worker(s) each")
    try:
        with postgres() as pg:
            url = pg.create_database("tokenward_scale")
            home = PgHome(workdir / "postgres", database_url=url)
            inst = install(home, clients, active)
            _two_instances(result, inst, workers, opts, reaper)
    except ImportError as exc:
        result.skipped = f"tests/support/postgres.py could not be imported: {exc}"
    except bt.BenchError as exc:
        result.failed = str(exc)
    except RuntimeError as exc:  # PostgresUnavailable, PostgresStartError
        result.skipped = str(exc).splitlines()[0]
    if result.skipped:
        log(f"  skipped: {result.skipped}")
    return result


def _two_instances(
    result: PgResult, inst: Installation, workers: int, opts: Options, reaper: bt.Reaper
) -> None:
    off = {"TOKENWARD_AUTO_MIGRATE": "false"}  # migrated once by the CLI, as documented
    pair: list[tuple[SizeCell, Served]] = []
    issuer: str | None = None
    try:
        for name in ("a", "b"):
            served = start_tokenward(
                inst,
                workers=workers,
                cpus=None,
                reaper=reaper,
                tag=f"pg-{name}",
                issuer=issuer,
                extra_env=off,
            )
            issuer = issuer or served.request.url.removesuffix("/token")
            cell = SizeCell(inst, workers, startup=served.startup_seconds, idle=served.memory())
            result.instances.append(cell)
            pair.append((cell, served))
        if opts.warmup > 0:
            _pair_run(pair, opts, opts.warmup)
        for rep in range(opts.repeats):
            bt.wait_until_idle(opts.idle_wait, opts.noise)
            try:
                runs = _pair_run(pair, opts, opts.duration)
            except bt.BenchError as exc:
                result.failed = str(exc)
                return
            result.totals.append(sum(r.rps for r in runs))
            log(f"  run {rep + 1} of {opts.repeats}: {result.totals[-1]:,.0f} tokens/s together")
            for (cell, served), run in zip(pair, runs, strict=True):
                cell.runs.append(run)
                log(f"    instance {describe(run)}")
                scan = served.scan_log()
                if not scan.clean:
                    cell.notes.append(f"server log: {scan.summary()}")
                if not served.alive():
                    cell.failed = "the instance exited during the run"
        for cell, served in pair:
            cell.loaded = served.memory()
    finally:
        for _, served in pair:
            served.stop()


def postgres_table(result: PgResult) -> str:
    lines = [
        "| instance | workers | clients | tokens/s (median) | worst - best | p50 | p99 (median) "
        "| p99 worst | server CPU µs/token | start-up (to first 200) | RSS loaded | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if result.skipped or not result.instances:
        reason = result.skipped or result.failed or "no instance started"
        lines.append(f"| skipped: {reason} |" + " |" * 11)
        return "\n".join(lines)
    for name, c in zip("AB", result.instances, strict=False):
        if not c.runs:
            lines.append(f"| {name} | {c.workers} | {c.inst.clients:,} | FAILED |" + " |" * 8)
            continue
        rps = [r.rps for r in c.runs]
        p99 = [r.p99_ms for r in c.runs]
        rss = f"{c.loaded.rss_mib:.0f} MiB" if c.loaded else "n/a"
        lines.append(
            f"| {name} | {c.workers} | {c.inst.clients:,} | {median(rps):,.0f} "
            f"| {min(rps):,.0f} - {max(rps):,.0f} | {_ms(median([r.p50_ms for r in c.runs]))} "
            f"| {_ms(median(p99))} | {_ms(max(p99))} "
            f"| {median([r.cpu_us_per_request for r in c.runs]):.0f} | {c.startup:.2f} s "
            f"| {rss} | {errors_of(c.runs)} |"
        )
    if result.totals:
        t = result.totals
        worst_p99 = max(r.p99_ms for c in result.instances for r in c.runs) if t else 0.0
        lines.append(
            f"| **both** | | | **{median(t):,.0f}** | {min(t):,.0f} - {max(t):,.0f} | "
            f"| | {_ms(worst_p99)} | | | | {sum(errors_of(c.runs) for c in result.instances)} |"
        )
    return "\n".join(lines)


# -- section 3: soak -----------------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # seconds since the soak began, at the end of the sample
    run: bt.WrkRun
    memory: Memory
    log_errors: int


@dataclass
class SoakResult:
    clients: int
    workers: int
    seconds: float
    peak: float = 0.0
    rate: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    failed: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed is None and all(
            errors_of([s.run]) == 0 and s.log_errors == 0 for s in self.samples
        )


def run_soak(
    inst: Installation,
    *,
    workers: int,
    seconds: float,
    every: float,
    fraction: float,
    opts: Options,
    cpus: Sequence[int],
    reaper: bt.Reaper,
) -> SoakResult:
    result = SoakResult(inst.clients, workers, seconds)
    where = bt.placement(workers, cpus)
    log(f"soak: {inst.clients:,} clients, {workers} worker(s), {seconds:g} s; {where.note}")
    try:
        served = start_tokenward(
            inst, workers=workers, cpus=where.server_cpus, reaper=reaper, tag=f"soak-{workers}w"
        )
    except bt.BenchError as exc:
        result.failed = str(exc)
        return result
    try:
        bt.wait_until_idle(opts.idle_wait, opts.noise)
        peak = warm_and_load(served, inst, opts, where)
        result.peak = peak.rps
        result.rate = fraction * peak.rps
        log(f"  peak {describe(peak)}; holding {result.rate:,.0f} tokens/s")
        served.scan_log()
        _soak_samples(result, served, inst, opts, where, every)
    except bt.BenchError as exc:
        result.failed = str(exc)
    finally:
        served.stop()
    return result


def _soak_samples(
    result: SoakResult,
    served: Served,
    inst: Installation,
    opts: Options,
    where: bt.Placement,
    every: float,
) -> None:
    began = time.monotonic()
    for _ in range(max(1, math.ceil(result.seconds / every))):
        run = load(
            served,
            inst,
            opts,
            seconds=every,
            conns=opts.conns,
            wrk_cpus=where.wrk_cpus,
            rate=result.rate,
        )
        scan = served.scan_log()
        sample = Sample(time.monotonic() - began, run, served.memory(), scan.errors)
        result.samples.append(sample)
        log(
            f"  t={sample.at:5.0f} s {describe(run)}  late {run.extra.get('late', 0)}  "
            f"RSS {sample.memory.rss_mib:.0f} MiB"
        )
        if not scan.clean:
            result.notes.append(f"at t={sample.at:.0f} s, server log: {scan.summary()}")
        if not served.alive():
            result.failed = f"the server exited at t={sample.at:.0f} s"
            return


def soak_table(result: SoakResult) -> str:
    lines = [
        "| t (s) | tokens/s | p50 | p99 | max | sent late (> 10 ms) | RSS | PSS | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if not result.samples:
        lines.append(f"| FAILED: {result.failed or 'no sample'} |" + " |" * 8)
    for s in result.samples:
        r = s.run
        lines.append(
            f"| {s.at:.0f} | {r.rps:,.0f} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {_ms(r.max_ms)} "
            f"| {r.extra.get('late', 0):,} | {s.memory.rss_mib:.0f} MiB "
            f"| {s.memory.pss_mib:.0f} MiB | {errors_of([r]) + s.log_errors} |"
        )
    return "\n".join(lines)


def soak_notes(result: SoakResult) -> list[str]:
    out = [
        f"Soak: {result.clients:,} clients, {result.workers} worker(s), "
        f"peak {result.peak:,.0f} tokens/s, held at {result.rate:,.0f} tokens/s "
        f"for {result.seconds:g} s."
    ]
    if len(result.samples) >= 2:
        first, last = result.samples[0], result.samples[-1]
        p99 = [s.run.p99_ms for s in result.samples]
        out.append(
            f"Memory from the first to the last sample: RSS {first.memory.rss_mib:.0f} -> "
            f"{last.memory.rss_mib:.0f} MiB ({last.memory.rss_mib - first.memory.rss_mib:+.1f}), "
            f"PSS {first.memory.pss_mib:.0f} -> {last.memory.pss_mib:.0f} MiB; p99 "
            f"{_ms(min(p99))} to {_ms(max(p99))} (median {_ms(median(p99))})."
        )
    if result.failed:
        out.append(f"Soak FAILED: {result.failed}")
    out.extend(dict.fromkeys(result.notes))
    return out


# -- report --------------------------------------------------------------------------------------


@dataclass
class Report:
    registry: list[SizeCell] = field(default_factory=list)
    pg: PgResult | None = None
    soak: SoakResult | None = None

    @property
    def ok(self) -> bool:
        return (
            all(c.ok for c in self.registry)
            and (self.pg is None or self.pg.ok)
            and (self.soak is None or self.soak.ok)
        )


def method_notes(opts: Options, active: int) -> list[str]:
    return [
        f"Load: wrk, {opts.threads} thread, {opts.conns} keep-alive connections, `POST /token`, "
        f"ES256, client_secret_basic, `{BODY}`; each request from a client chosen at random "
        f"among {active:,} registered clients spread over the id range (`wrk_token_rotate.lua`). "
        f"Each run {opts.warmup:g} s warm-up + {opts.duration:g} s measured; medians of "
        f"{opts.repeats} runs, the sizes alternating (A B A B ...).",
        "Clients registered with `register_clients.py`: the first and last through the admin "
        "layer (`Admin.create_client`), the rest as bulk copies of the first one's rows with "
        "their own id and secret digest (the admin layer takes 5-30 ms per client: 100,000 would "
        "take 10-50 minutes).",
        "Start-up = from starting `tokenward serve` to its first 200 on `POST /token` (schema "
        "check, key check, registry load and uvicorn start included). RSS and PSS are summed over "
        "the server's process tree (PSS divides pages the workers share); *ready* is right after "
        "start-up, *loaded* after the runs.",
        "p50/p99 are wrk's (closed loop). In the soak wrk holds a fixed rate with a per-thread "
        "schedule (Debian has no wrk2): a stall delays the requests due during it, and their "
        "wait before sending is not in wrk's latency; *sent late* counts them.",
        "CPU placement as in `bench_token.py` (one worker on CPU 1 and wrk on CPU 0; two workers "
        "share both CPUs); PostgreSQL instances, their wrk processes and PostgreSQL share the "
        "machine, and server CPU there excludes PostgreSQL's own.",
    ]


def render(report: Report, opts: Options, active: int, cpus: Sequence[int], head: str) -> str:
    parts = [head, "", "| item | value |", "|---|---|"]
    parts += [f"| {k} | {v} |" for k, v in bt.machine_info(cpus)]
    parts += ["", *[f"- {n}" for n in method_notes(opts, active)], ""]
    if report.registry:
        parts += ["## Registry size", "", registry_table(report.registry), ""]
        parts += [f"- {n}" for n in registry_notes(report.registry)] + [""]
    if report.pg is not None:
        parts += ["## Two instances on one PostgreSQL", "", postgres_table(report.pg), ""]
        parts += [f"- {n}" for c in report.pg.instances for n in dict.fromkeys(c.notes)]
        if report.pg.failed:
            parts.append(f"- FAILED: {report.pg.failed}")
        parts.append("")
    if report.soak is not None:
        parts += ["## Soak at a fixed rate", "", soak_table(report.soak), ""]
        parts += [f"- {n}" for n in soak_notes(report.soak)] + [""]
    return "\n".join(parts)


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (small, short)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--sizes", nargs="+", type=int, help="client counts (1000 100000)")
    parser.add_argument("--active", type=int, default=1000, help="clients the load rotates over")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="worker counts")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before a run (default 2)")
    parser.add_argument("--repeats", type=int, help="runs per size (default 3)")
    parser.add_argument("--conns", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--pg-clients", type=int, help="clients on PostgreSQL (largest size)")
    parser.add_argument("--pg-workers", type=int, default=1, help="workers per PG instance")
    parser.add_argument(
        "--soak", type=float, metavar="SECONDS", help="soak length (default 600; --quick 30)"
    )
    parser.add_argument("--sample-every", type=float, help="soak sample length (default 30)")
    parser.add_argument("--soak-workers", type=int, default=2, help="workers in the soak")
    parser.add_argument("--soak-fraction", type=float, default=0.5, help="of the peak rate")
    parser.add_argument("--idle-wait", type=float, help="max wait for an idle machine (30 s)")
    parser.add_argument("--noise", type=float, default=0.15, help="idle means under this (cores)")
    parser.add_argument("--out", type=Path, help="write the report here (default results/scale.md)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--keep-dir", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([1000, 5000] if quick else [1000, 100_000])
    args.duration = args.duration or (3.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 2.0)
    args.repeats = args.repeats or (1 if quick else 3)
    args.soak = args.soak if args.soak is not None else (30.0 if quick else 600.0)
    args.sample_every = args.sample_every or (10.0 if quick else 30.0)
    args.idle_wait = args.idle_wait if args.idle_wait is not None else (5.0 if quick else 30.0)
    args.pg_clients = args.pg_clients or max(args.sizes)
    if any(not 1 <= s <= 10_000_000 for s in [*args.sizes, args.pg_clients]) or args.active < 1:
        parser.error("client counts must be in [1, 10000000] and --active at least 1")
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 120 or not 1 <= args.repeats <= 20:
        parser.error("--duration in (0, 600], --warmup in [0, 120], --repeats in [1, 20]")
    if not 0 < args.soak_fraction <= 1 or args.soak < 0 or not 1 <= args.sample_every <= 600:
        parser.error("--soak-fraction in (0, 1], --soak >= 0, --sample-every in [1, 600]")
    if not 1 <= args.threads <= args.conns:
        parser.error("--threads must be in [1, --conns]")
    return args


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace, opts: Options, workdir: Path, reaper: bt.Reaper) -> Report:
    cpus = sorted(os.sched_getaffinity(0))
    report = Report()
    insts: dict[int, Installation] = {}

    def sqlite(size: int) -> Installation:
        if size not in insts:
            insts[size] = install(bt.Home(workdir / f"sqlite-{size}"), size, args.active)
        return insts[size]

    if "registry" in args.sections:
        log("setting up one SQLite home per size")
        chosen = [sqlite(size) for size in sorted(set(args.sizes))]
        report.registry = run_registry(chosen, args.workers, opts, cpus, reaper)
    if "postgres" in args.sections:
        report.pg = run_postgres(
            args.pg_clients, args.pg_workers, args.active, opts, reaper, workdir
        )
    if "soak" in args.sections and args.soak > 0:
        report.soak = run_soak(
            sqlite(max(args.sizes)),
            workers=args.soak_workers,
            seconds=args.soak,
            every=args.sample_every,
            fraction=args.soak_fraction,
            opts=opts,
            cpus=cpus,
            reaper=reaper,
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_tools("wrk", "taskset")
    opts = Options(
        args.duration,
        args.warmup,
        args.conns,
        args.threads,
        args.repeats,
        args.idle_wait,
        args.noise,
    )
    command = shlex.join(["python", "bench/bench_scale.py", *sys.argv[1:]])
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    reaper = bt.Reaper()
    try:
        with bt.temporary_home(args.keep_dir) as workdir:
            report = run(args, opts, workdir, reaper)
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    finally:
        reaper.close()
    cpus = sorted(os.sched_getaffinity(0))
    head = f"# Scaling benchmark\n\nMeasured {when} with:\n\n    {command}"
    text = render(report, opts, args.active, cpus, head)
    print(text)
    out = args.out or (None if args.quick else DEFAULT_OUT)
    if out is not None and not args.no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        log(f"wrote {out}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
