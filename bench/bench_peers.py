"""Peer benchmark: tokenward, node-oidc-provider and a bare Python endpoint, alternating in one run.

The three stacks issue the same thing, a JWT access token (RFC 9068) for the client-credentials
grant with client_secret_basic, and are loaded by the same generator: wrk, one thread, the same
connections (64) and durations, the same Lua script (``wrk_token.lua``). For each algorithm
(ES256, RS256) and process count (1, 2) the script starts all three servers, checks one token
of each (a 200 whose JWT verifies against the server's own JWKS, with the expected ``alg`` and
``typ: at+jwt``), then runs them in turn, A B C A B C A B C, so that a slow minute of a shared
host hits every stack alike. Each measured run is preceded by a short warm-up. The table gives
the median of the runs and the worst and best, so a run that collapses stays visible.

    python bench/bench_peers.py            # ES256 and RS256, 1 and 2 processes, 3 runs each
    python bench/bench_peers.py --quick    # 1 s warm-up + 3 s, one run each: a smoke test
    python bench/bench_peers.py --algs ES256 --procs 2 --repeats 5

The stacks:

- **tokenward**: ``tokenward serve --workers N`` on a fresh SQLite home set up with the CLI.
- **node-oidc-provider**: pinned in ``bench/peers/package.json`` (installed with ``npm ci``
  into ``bench/peers/node_modules`` when missing), ``bench/peers/node_oidc_server.mjs``:
  one process, or node:cluster with N workers.
- **bare**: ``bench/peers/bare_token_app.py``, a raw ASGI token endpoint under uvicorn
  (uvloop, httptools) with N workers: the practical ceiling of a Python server.

CPU placement as in ``bench_token.py``: with one process each server is pinned to CPU 1 and wrk
to CPU 0; with two, servers and wrk share the machine. Server CPU per token is the CPU time of
the server's whole process tree (from /proc) over the requests it answered.
Exit status: 0 when every check passed and every response was a 200, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import FrameType

import bench_token as bt
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from served import (
    Memory,
    Served,
    TokenRequest,
    child_environ,
    ensure_tools,
    median,
    spread,
)

PEERS_DIR = bt.BENCH_DIR / "peers"
DEFAULT_OUT = bt.BENCH_DIR / "results" / "peers.md"
PEER_SCOPE = "read"
AUDIENCE = "https://api.bench.test"
ALGS = ("ES256", "RS256")
STACK_NAMES = ("tokenward", "node-oidc-provider", "bare")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _basic(client_id: str, secret: str) -> str:
    return base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")


# -- the three stacks ----------------------------------------------------------------------------


class Stack:
    """How to start one stack for an algorithm and a process count, and where its JWKS is."""

    name = ""
    label = ""

    def start(
        self, alg: str, procs: int, cpus: str | None, reaper: bt.Reaper, workdir: Path
    ) -> Served:
        raise NotImplementedError

    def jwks_url(self, base: str, http: httpx.Client) -> str:
        raise NotImplementedError


def _discovered_jwks(base: str, http: httpx.Client, well_known: str) -> str:
    response = http.get(f"{base}/.well-known/{well_known}")
    response.raise_for_status()
    url: str = response.json()["jwks_uri"]
    return url


class Tokenward(Stack):
    name = "tokenward"

    def __init__(self, home: bt.Home) -> None:
        self.home = home
        self.label = f"tokenward {version('tokenward')}"
        for alg in ALGS:
            bt.create_api(home, bt.APIS[alg.lower()])
        scopes = [bt.APIS[alg.lower()].scope for alg in ALGS]
        creds = bt.create_secret_client(home, "bench-peers", scopes)
        assert creds.basic is not None
        self.basic = creds.basic

    def start(
        self, alg: str, procs: int, cpus: str | None, reaper: bt.Reaper, workdir: Path
    ) -> Served:
        port = bt.free_port()
        issuer = f"http://127.0.0.1:{port}"
        body = f"grant_type=client_credentials&scope={bt.APIS[alg.lower()].scope}"
        command = [sys.executable, "-m", "tokenward", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", str(procs)]
        return Served(
            self.name,
            command,
            env=self.home.environ(issuer),
            cwd=self.home.path,
            cpus=cpus,
            log_path=workdir / f"tokenward-{alg}-{procs}.log",
            reaper=reaper,
            request=TokenRequest(f"{issuer}/token", self.basic, body),
            workers=procs,
        )

    def jwks_url(self, base: str, http: httpx.Client) -> str:
        return _discovered_jwks(base, http, "oauth-authorization-server")


class NodeOidcProvider(Stack):
    name = "node-oidc-provider"

    def __init__(self) -> None:
        install_node_peer()
        package = json.loads((PEERS_DIR / "node_modules/oidc-provider/package.json").read_text())
        self.version = str(package["version"])
        self.label = f"node-oidc-provider {self.version}"
        self.client_id = "bench-peers"
        self.secret = secrets.token_urlsafe(32)

    def start(
        self, alg: str, procs: int, cpus: str | None, reaper: bt.Reaper, workdir: Path
    ) -> Served:
        port = bt.free_port()
        env = child_environ(
            {
                "NODE_ENV": "production",
                "PORT": str(port),
                "ALG": alg,
                "WORKERS": str(procs),
                "CLIENT_ID": self.client_id,
                "CLIENT_SECRET": self.secret,
                "SCOPE": PEER_SCOPE,
                "AUDIENCE": AUDIENCE,
            }
        )
        return Served(
            self.name,
            ["node", "node_oidc_server.mjs"],
            env=env,
            cwd=PEERS_DIR,
            cpus=cpus,
            log_path=workdir / f"node-{alg}-{procs}.log",
            reaper=reaper,
            request=TokenRequest(
                f"http://127.0.0.1:{port}/token",
                _basic(self.client_id, self.secret),
                f"grant_type=client_credentials&scope={PEER_SCOPE}",
            ),
            workers=procs,
        )

    def jwks_url(self, base: str, http: httpx.Client) -> str:
        return _discovered_jwks(base, http, "openid-configuration")


class Bare(Stack):
    name = "bare"

    def __init__(self, workdir: Path) -> None:
        self.label = f"bare ASGI endpoint, uvicorn {version('uvicorn')}"
        self.client_id = "bench-peers"
        self.secret = secrets.token_urlsafe(32)
        self.keys: dict[str, Path] = {}
        for alg in ALGS:
            key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
                ec.generate_private_key(ec.SECP256R1())
                if alg == "ES256"
                else rsa.generate_private_key(public_exponent=65537, key_size=2048)
            )
            path = workdir / f"bare-{alg}.pem"
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            path.chmod(0o600)
            self.keys[alg] = path

    def start(
        self, alg: str, procs: int, cpus: str | None, reaper: bt.Reaper, workdir: Path
    ) -> Served:
        port = bt.free_port()
        issuer = f"http://127.0.0.1:{port}"
        env = child_environ(
            {
                "BARE_ALG": alg,
                "BARE_KEY_FILE": str(self.keys[alg]),
                "BARE_CLIENT_ID": self.client_id,
                "BARE_CLIENT_SECRET": self.secret,
                "BARE_ISSUER": issuer,
                "BARE_AUDIENCE": AUDIENCE,
                "BARE_SCOPE": PEER_SCOPE,
            }
        )
        command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(procs), "--loop", "uvloop", "--http", "httptools"]
        command += ["--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "30"]
        command += ["--app-dir", str(PEERS_DIR), "bare_token_app:app"]
        return Served(
            self.name,
            command,
            env=env,
            cwd=workdir,
            cpus=cpus,
            log_path=workdir / f"bare-{alg}-{procs}.log",
            reaper=reaper,
            request=TokenRequest(
                f"{issuer}/token",
                _basic(self.client_id, self.secret),
                f"grant_type=client_credentials&scope={PEER_SCOPE}",
            ),
            workers=procs,
        )

    def jwks_url(self, base: str, http: httpx.Client) -> str:
        return f"{base}/jwks"


def install_node_peer() -> None:
    """``npm ci`` the pinned node-oidc-provider into bench/peers/node_modules when missing."""
    ensure_tools("node", "npm")
    if (PEERS_DIR / "node_modules/oidc-provider/package.json").is_file():
        return
    log("installing node-oidc-provider with npm ci (bench/peers/package-lock.json)")
    proc = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=PEERS_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"npm ci failed in {PEERS_DIR}:\n{proc.stdout}{proc.stderr}")


# -- the check: one verified token per stack -----------------------------------------------------

RFC9068_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")


def check_token(served: Served, stack: Stack, alg: str) -> str:
    """One request must be a 200 carrying a JWT that verifies with the stack's JWKS."""
    base = served.request.url.removesuffix("/token")
    with httpx.Client(timeout=10.0) as http:
        response = served.request.send(http)
        if response.status_code != 200:
            raise bt.BenchError(f"check: HTTP {response.status_code} {response.text[:300]}")
        body = response.json()
        jwks = http.get(stack.jwks_url(base, http)).raise_for_status().json()
    if str(body.get("token_type", "")).lower() != "bearer":
        raise bt.BenchError(f"check: token_type is {body.get('token_type')!r}, not Bearer")
    if "no-store" not in response.headers.get("cache-control", ""):
        raise bt.BenchError("check: the token response lacks Cache-Control: no-store")
    try:
        token = jwt.decode(body["access_token"], KeySet.import_key_set(jwks), algorithms=[alg])
    except (JoseError, KeyError, ValueError) as exc:
        raise bt.BenchError(f"check: the access token does not verify: {exc!r}") from None
    typ = str(token.header.get("typ", "")).lower()
    if token.header.get("alg") != alg or typ not in ("at+jwt", "application/at+jwt"):
        raise bt.BenchError(f"check: unexpected JWT header {token.header}")
    missing = [c for c in RFC9068_CLAIMS if c not in token.claims]
    if missing:
        raise bt.BenchError(f"check: RFC 9068 claims missing: {', '.join(missing)}")
    if token.claims["exp"] <= time.time():
        raise bt.BenchError("check: the token has already expired")
    return f"200, {alg} {typ} verified with the JWKS, claims {' '.join(sorted(token.claims))}"


# -- one cell of the table: a stack at an algorithm and process count ----------------------------


@dataclass
class Cell:
    stack: Stack
    alg: str
    procs: int
    runs: list[bt.WrkRun] = field(default_factory=list)
    startup: float = 0.0
    memory: Memory | None = None
    check: str = ""
    failed: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(r.non2xx + sum(r.socket_errors.values()) for r in self.runs)

    @property
    def ok(self) -> bool:
        return self.failed is None and self.errors == 0

    def rps(self) -> list[float]:
        return [r.rps for r in self.runs]

    def p99(self) -> list[float]:
        return [r.p99_ms for r in self.runs]


@dataclass
class Options:
    duration: float
    warmup: float
    first_warmup: float
    conns: int
    threads: int
    repeats: int
    idle_wait: float
    noise: float


def _load(served: Served, opts: Options, seconds: float, wrk_cpus: str | None) -> bt.WrkRun:
    return bt.run_wrk(
        url=served.request.url,
        lua=bt.LUA_BASIC,
        env={"TW_BASIC": served.request.basic, "TW_BODY": served.request.body},
        conns=opts.conns,
        threads=opts.threads,
        seconds=seconds,
        cpus=wrk_cpus,
        server_pids=served.pids(),
        reaper=served.reaper,
    )


def _start_cell(cell: Cell, where: bt.Placement, reaper: bt.Reaper, workdir: Path) -> Served | None:
    try:
        served = cell.stack.start(cell.alg, cell.procs, where.server_cpus, reaper, workdir)
    except bt.BenchError as exc:
        cell.failed = str(exc)
        return None
    try:
        cell.startup = served.wait_ready()
        cell.check = check_token(served, cell.stack, cell.alg)
        log(f"  {cell.stack.name}: ready in {cell.startup:.1f} s; check {cell.check}")
    except (bt.BenchError, httpx.HTTPError) as exc:
        cell.failed = str(exc)
        log(f"  {cell.stack.name}: FAILED: {exc}")
        served.stop()
        return None
    return served


def _measure(cell: Cell, served: Served, opts: Options, where: bt.Placement) -> None:
    idle = bt.wait_until_idle(opts.idle_wait, opts.noise)
    if idle >= opts.noise:
        log(f"    machine busy ({idle:.2f} cores) after {opts.idle_wait:g} s; running anyway")
    # The first run of a stack warms it up longer (JIT, caches, connection pools).
    warmup = opts.warmup + (opts.first_warmup if not cell.runs else 0.0)
    try:
        if warmup > 0:
            _load(served, opts, warmup, where.wrk_cpus)
        run = _load(served, opts, opts.duration, where.wrk_cpus)
    except bt.BenchError as exc:
        cell.failed = str(exc)
        log(f"    {cell.stack.name}: FAILED: {exc}")
        return
    cell.runs.append(run)
    scan = served.scan_log()
    if not scan.clean:
        cell.notes.append(f"server log: {scan.summary()}")
    if not served.alive():
        cell.failed = "the server exited during the run"
    log(
        f"    {cell.stack.name:<18} {run.rps:>8,.0f} tokens/s  p50 {run.p50_ms:6.2f} ms  "
        f"p99 {run.p99_ms:7.2f} ms  {run.cpu_us_per_request:4.0f} µs CPU/token  "
        f"server {run.server_cores:.2f} cores  other {run.other_cores:.2f}  "
        f"steal {run.steal_cores:.2f}  "
        f"errors {run.non2xx + sum(run.socket_errors.values())}"
    )


def run_config(
    stacks: Sequence[Stack],
    alg: str,
    procs: int,
    opts: Options,
    cpus: Sequence[int],
    reaper: bt.Reaper,
    workdir: Path,
) -> tuple[list[Cell], int]:
    """Start every stack for (alg, procs), check each, then alternate the measured runs."""
    where = bt.placement(procs, cpus)
    log(f"{alg}, {procs} process(es): {where.note}")
    cells = [Cell(stack, alg, procs) for stack in stacks]
    running: dict[int, Served] = {}
    try:
        for index, cell in enumerate(cells):
            served = _start_cell(cell, where, reaper, workdir)
            if served is not None:
                running[index] = served
        calibration = bt.calibrate(where.calibration_cpu)
        for rep in range(opts.repeats):
            log(f"  run {rep + 1} of {opts.repeats}")
            for index, cell in enumerate(cells):
                if index in running and cell.failed is None:
                    _measure(cell, running[index], opts, where)
        for index, served in running.items():
            cells[index].memory = served.memory()
    finally:
        for served in running.values():
            served.stop()
    return cells, calibration


# -- report --------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def table(cells: Sequence[Cell]) -> str:
    lines = [
        "| stack | alg | processes | tokens/s (median) | worst - best | spread | p50 "
        "| p99 (median) | p99 worst | server CPU µs/token | server cores | errors "
        "| other load (max) | host steal (max) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        head = f"| {c.stack.name} | {c.alg} | {c.procs} "
        if not c.runs:
            lines.append(head + "| FAILED (see notes) |" + " |" * 10)
            continue
        rps = c.rps()
        flag = "" if c.ok else " (!)"
        lines.append(
            head + f"| {median(rps):,.0f} | {min(rps):,.0f} - {max(rps):,.0f} | {spread(rps):.0%} "
            f"| {_ms(median([r.p50_ms for r in c.runs]))} | {_ms(median(c.p99()))} "
            f"| {_ms(max(c.p99()))} | {median([r.cpu_us_per_request for r in c.runs]):.0f} "
            f"| {median([r.server_cores for r in c.runs]):.2f} | {c.errors}{flag} "
            f"| {max(max(r.other_cores for r in c.runs), 0):.2f} "
            f"| {max(r.steal_cores for r in c.runs):.2f} |"
        )
    return "\n".join(lines)


def _find(cells: Sequence[Cell], name: str, alg: str, procs: int) -> Cell | None:
    for c in cells:
        if c.stack.name == name and c.alg == alg and c.procs == procs and c.runs:
            return c
    return None


def comparison(cells: Sequence[Cell]) -> str:
    """tokenward against the peers, per (alg, processes), from the medians."""
    lines = [
        "| alg | processes | tokenward ÷ node-oidc-provider | tokenward ÷ bare "
        "| p99 tokenward / node-oidc-provider / bare | tokenward worst run vs best |",
        "|---|---:|---:|---:|---|---:|",
    ]
    configs = sorted({(c.alg, c.procs) for c in cells})
    for alg, procs in configs:
        tw = _find(cells, "tokenward", alg, procs)
        node = _find(cells, "node-oidc-provider", alg, procs)
        bare = _find(cells, "bare", alg, procs)

        def ratio(other: Cell | None, tw: Cell | None = tw) -> str:
            if tw is None or other is None or not median(other.rps()):
                return "n/a"
            return f"{median(tw.rps()) / median(other.rps()):.2f}x"

        p99 = " / ".join(_ms(median(c.p99())) if c else "n/a" for c in (tw, node, bare))
        worst = f"-{spread(tw.rps()):.0%}" if tw else "n/a"
        lines.append(f"| {alg} | {procs} | {ratio(node)} | {ratio(bare)} | {p99} | {worst} |")
    return "\n".join(lines)


def notes(
    cells: Sequence[Cell], opts: Options, calibrations: dict[tuple[str, int], int]
) -> list[str]:
    out = [
        f"Method: for each algorithm and process count the three stacks were started together "
        f"and measured in turn, A B C repeated {opts.repeats} time(s); each run is "
        f"{opts.warmup:g} s of warm-up ({opts.first_warmup:g} s more before a stack's first run) "
        f"then {opts.duration:g} s measured with wrk "
        f"({opts.threads} thread, {opts.conns} keep-alive connections, `POST /token`, "
        "client_secret_basic, `grant_type=client_credentials&scope=...`). The table gives the "
        "median of the runs; *worst - best* and *spread* ((best - worst) / best) show "
        "run-to-run collapse; *p99 worst* is the highest p99 of the runs.",
        "p50/p99 are wrk's (closed loop: coordinated omission makes p99 indicative). Server CPU "
        "µs/token = CPU time of the server's whole process tree / tokens; server cores = that "
        "CPU time / wall time; other load = the rest of the machine during the run; host steal "
        "= CPU time the hypervisor gave to other guests while this machine's CPUs were ready "
        "to run (/proc/stat), in cores: a shared host shows there, and in the tails.",
        "Processes: tokenward `serve --workers N`; node-oidc-provider one process, or a "
        "node:cluster primary with N workers; bare: uvicorn with N workers (plus its supervisor "
        "when N > 1). Placement: one process pinned to CPU 1 and wrk to CPU 0; two processes "
        "share both CPUs with wrk.",
        "Check before loading: one request per stack answered 200 with a JWT that verified "
        "against the stack's published JWKS, with the expected alg, `typ: at+jwt` and the RFC "
        "9068 claims, and `Cache-Control: no-store`.",
        "Targets (issue 10): tokenward p99 at 64 connections no worse than node-oidc-provider's "
        "and under 15 ms; worst of three runs within 15 % of the best; with two processes "
        "tokens/s at least 2.5x node-oidc-provider for ES256 and 1.5x for RS256.",
    ]
    for (alg, procs), speed in sorted(calibrations.items()):
        out.append(
            f"Calibration before {alg}/{procs}: {speed:,} `cryptography` ES256 signatures/s on one "
            "core (how fast this host was then)."
        )
    for c in cells:
        where = f"{c.stack.name}, {c.alg}, {c.procs} process(es)"
        if c.failed:
            out.append(f"{where}: FAILED: {c.failed}")
        if c.memory is not None:
            out.append(
                f"{where}: ready {c.startup:.1f} s after start; memory after the runs "
                f"{c.memory.rss_mib:.0f} MiB RSS / {c.memory.pss_mib:.0f} MiB PSS in "
                f"{c.memory.processes} process(es)."
            )
        out.extend(f"{where}: {n}" for n in dict.fromkeys(c.notes))
    return out


def node_version() -> str:
    proc = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def render(
    cells: Sequence[Cell],
    stacks: Sequence[Stack],
    opts: Options,
    calibrations: dict[tuple[str, int], int],
    cpus: Sequence[int],
    command: str,
    when: str,
) -> str:
    info = [
        *bt.machine_info(cpus),
        ("node", node_version()),
        ("stacks", "; ".join(s.label for s in stacks)),
    ]
    return "\n".join(
        [
            "# Peer benchmark: tokenward, node-oidc-provider, bare Python endpoint",
            "",
            f"Measured {when} with:",
            "",
            f"    {command}",
            "",
            "| item | value |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in info],
            "",
            table(cells),
            "",
            comparison(cells),
            "",
            *[f"- {n}" for n in notes(cells, opts, calibrations)],
            "",
        ]
    )


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s + 3 s, one run")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each run (default 2)")
    parser.add_argument(
        "--first-warmup",
        type=float,
        help="extra warm-up before a stack's first run (default 5; --quick 1)",
    )
    parser.add_argument("--repeats", type=int, help="runs of each stack (default 3)")
    parser.add_argument("--conns", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--algs", nargs="+", choices=ALGS, default=list(ALGS))
    parser.add_argument("--procs", nargs="+", type=int, default=[1, 2], help="process counts")
    parser.add_argument("--stacks", nargs="+", choices=STACK_NAMES, default=list(STACK_NAMES))
    parser.add_argument(
        "--idle-wait", type=float, help="max seconds to wait for an idle machine (default 30)"
    )
    parser.add_argument("--noise", type=float, default=0.15, help="idle means under this (cores)")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="TOKENWARD_X=Y",
        help="extra setting for tokenward (experiments); repeatable",
    )
    parser.add_argument("--out", type=Path, help="write the report here (default results/peers.md)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--keep-dir", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.first_warmup is None:
        args.first_warmup = 1.0 if args.quick else 5.0
    if args.idle_wait is None:
        args.idle_wait = 5.0 if args.quick else 30.0
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 120 or not 1 <= args.repeats <= 20:
        parser.error("--duration in (0, 600], --warmup in [0, 120], --repeats in [1, 20]")
    if any(not 1 <= p <= 16 for p in args.procs) or not 1 <= args.threads <= args.conns:
        parser.error("--procs in [1, 16]; --threads in [1, --conns]")
    for item in args.server_env:
        if "=" not in item or not item.startswith("TOKENWARD_"):
            parser.error(f"--server-env takes TOKENWARD_NAME=VALUE, not {item!r}")
    return args


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def build_stacks(names: Sequence[str], workdir: Path, server_env: dict[str, str]) -> list[Stack]:
    stacks: list[Stack] = []
    for name in STACK_NAMES:  # always in the order A B C
        if name not in names:
            continue
        if name == "tokenward":
            log(f"setting up a fresh tokenward home in {workdir / 'tokenward'}")
            (workdir / "tokenward").mkdir()
            stacks.append(Tokenward(bt.Home(workdir / "tokenward", server_env)))
        elif name == "node-oidc-provider":
            stacks.append(NodeOidcProvider())
        else:
            stacks.append(Bare(workdir))
    return stacks


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_tools("wrk", "taskset")
    cpus = sorted(os.sched_getaffinity(0))
    opts = Options(
        args.duration,
        args.warmup,
        args.first_warmup,
        args.conns,
        args.threads,
        args.repeats,
        args.idle_wait,
        args.noise,
    )
    configs = [(alg, procs) for alg in args.algs for procs in args.procs]
    per_run = opts.warmup + opts.duration + 2
    estimate = len(configs) * len(args.stacks) * (opts.repeats * per_run + opts.first_warmup)
    log(
        f"{len(configs)} configuration(s) x {len(args.stacks)} stacks x {opts.repeats} run(s): "
        f"about {estimate / 60:.0f} min plus start-ups"
    )
    command = shlex.join(["python", "bench/bench_peers.py", *sys.argv[1:]])
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    reaper = bt.Reaper()
    cells: list[Cell] = []
    calibrations: dict[tuple[str, int], int] = {}
    try:
        with bt.temporary_home(args.keep_dir) as workdir:
            server_env = dict(item.split("=", 1) for item in args.server_env)
            stacks = build_stacks(args.stacks, workdir, server_env)
            for alg, procs in configs:
                found, speed = run_config(stacks, alg, procs, opts, cpus, reaper, workdir)
                cells += found
                calibrations[(alg, procs)] = speed
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    finally:
        reaper.close()

    print(table(cells))
    print()
    print(comparison(cells))
    print()
    for note in notes(cells, opts, calibrations):
        print(f"- {note}")
    out = args.out or (None if args.quick else DEFAULT_OUT)
    if out is not None and not args.no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(cells, stacks, opts, calibrations, cpus, command, when))
        log(f"wrote {out}")
    return 0 if cells and all(c.ok for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
