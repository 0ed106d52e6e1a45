"""Benchmark tokenward's token endpoint with wrk: requests/s, p50, p99, server CPU.

For every scenario the script starts a real ``tokenward serve --workers N`` on a free
127.0.0.1 port, set up through the real CLI in a fresh temporary home (SQLite database and
development secrets), checks that one request gets a 200 with the expected token, warms up,
then runs ``wrk`` in a separate process and reads the server's CPU time from /proc.

    python bench/bench_token.py            # 2 s warm-up + 10 s per scenario, writes results
    python bench/bench_token.py --quick    # 1 s + 3 s smoke run, prints only
    python bench/bench_token.py --only es256 --duration 20 --conns 128

CPU placement on a 2-core machine: with one worker the server is pinned to CPU 1 and wrk to
CPU 0; with two workers the server and wrk share both CPUs (wrk's own CPU use is reported).
The host may be shared, so before each measured run the script waits (bounded) for the
machine to be idle and repeats a run during which other processes used more than
``--noise`` of a core.

Scenarios are rows of ``SCENARIOS``; a row whose feature the server does not advertise in its
discovery document (for example ``private_key_jwt`` or opaque tokens) is skipped with a note.
Exit status: 0 when every run finished with only 2xx responses, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_OUT = BENCH_DIR / "results" / "token.md"
LUA_BASIC = BENCH_DIR / "wrk_token.lua"
LUA_ASSERTION = BENCH_DIR / "wrk_token_assertion.lua"
HZ = os.sysconf("SC_CLK_TCK")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PACKAGES = (
    "tokenward",
    "uvicorn",
    "uvloop",
    "httptools",
    "starlette",
    "cryptography",
    "joserfc",
    "sqlalchemy",
    "aiosqlite",
)

Discovery = Mapping[str, Any]


# -- what is measured ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiSpec:
    """One API the bench registers; its scope selects it in the token request."""

    identifier: str
    scope: str
    signing_alg: str
    token_format: str


APIS: dict[str, ApiSpec] = {
    "es256": ApiSpec("https://es256.bench.tokenward.test", "bench:es256", "ES256", "jwt"),
    "rs256": ApiSpec("https://rs256.bench.tokenward.test", "bench:rs256", "RS256", "jwt"),
    "opaque": ApiSpec("https://opaque.bench.tokenward.test", "bench:opaque", "ES256", "opaque"),
}


def _needs_auth_method(method: str) -> Callable[[Discovery], str | None]:
    def check(doc: Discovery) -> str | None:
        methods = doc.get("token_endpoint_auth_methods_supported", [])
        if method not in methods:
            return f"`{method}` is not in discovery's token_endpoint_auth_methods_supported"
        if method == "private_key_jwt" and "ES256" not in doc.get(
            "token_endpoint_auth_signing_alg_values_supported", []
        ):
            return "ES256 client assertions are not advertised"
        return None

    return check


def _needs_signing_alg(alg: str) -> Callable[[Discovery], str | None]:
    def check(doc: Discovery) -> str | None:
        if alg not in doc.get("access_token_signing_alg_values_supported", []):
            return f"{alg} is not in access_token_signing_alg_values_supported"
        return None

    return check


def _needs_opaque(doc: Discovery) -> str | None:
    # An opaque token is only useful with introspection (RFC 7662), so its endpoint in the
    # discovery document is the sign that the server issues them.
    if "introspection_endpoint" not in doc:
        return "opaque tokens need introspection; discovery has no introspection_endpoint"
    return None


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    api: str
    auth: str
    workers: int
    requires: tuple[Callable[[Discovery], str | None], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.key}-{self.workers}w"

    def unsupported(self, doc: Discovery) -> str | None:
        for check in self.requires:
            reason = check(doc)
            if reason:
                return reason
        return None


def _scenarios() -> list[Scenario]:
    basic = _needs_auth_method("client_secret_basic")
    rows: list[Scenario] = []
    for workers in (1, 2):
        rows.append(
            Scenario(
                "es256",
                "ES256 JWT, client_secret_basic",
                "es256",
                "client_secret_basic",
                workers,
                (basic, _needs_signing_alg("ES256")),
            )
        )
    for workers in (1, 2):
        rows.append(
            Scenario(
                "rs256",
                "RS256 JWT, client_secret_basic",
                "rs256",
                "client_secret_basic",
                workers,
                (basic, _needs_signing_alg("RS256")),
            )
        )
    for workers in (1, 2):
        rows.append(
            Scenario(
                "es256-pkjwt",
                "ES256 JWT, private_key_jwt (ES256 assertion)",
                "es256",
                "private_key_jwt",
                workers,
                (_needs_auth_method("private_key_jwt"), _needs_signing_alg("ES256")),
            )
        )
    for workers in (1, 2):
        rows.append(
            Scenario(
                "opaque",
                "opaque token, client_secret_basic",
                "opaque",
                "client_secret_basic",
                workers,
                (basic, _needs_opaque),
            )
        )
    return rows


SCENARIOS = _scenarios()


# -- processes and /proc ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> set[int]:
    """``pid`` and all its descendants (uvicorn's supervisor and its workers)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.add(current)
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(x) for x in handle.read().split())
    return found


def cpu_by_pid(pids: set[int]) -> dict[int, float]:
    """utime + stime of each of the given processes, in seconds."""
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / HZ
    return out


def cpu_seconds(pids: set[int]) -> float:
    """utime + stime of the given processes together, in seconds."""
    return sum(cpu_by_pid(pids).values())


def _cpu_line() -> list[int]:
    """user nice system idle iowait irq softirq steal, in ticks, from /proc/stat."""
    with open("/proc/stat") as handle:
        return [int(x) for x in handle.readline().split()[1:9]]


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all CPUs), not idle, waiting for I/O or stolen."""
    values = _cpu_line()
    return (sum(values) - values[3] - values[4] - values[7]) / HZ


def steal_seconds() -> float:
    """CPU seconds this virtual machine's CPUs were ready to run but the hypervisor ran
    something else (steal): load from outside the machine, which no process here shows."""
    return _cpu_line()[7] / HZ


def wait_until_idle(max_wait: float, threshold: float) -> float:
    """Wait (at most ``max_wait`` s) until the machine uses under ``threshold`` cores."""
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        busy = machine_busy_seconds() - before
        if busy < threshold or time.monotonic() >= deadline:
            return busy
        time.sleep(1.0)


_CALIBRATE = """
import time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
key, ecdsa, data = ec.generate_private_key(ec.SECP256R1()), ec.ECDSA(hashes.SHA256()), b"x" * 400
best = 0.0
for _ in range(3):
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.3:
        for _ in range(200):
            key.sign(data, ecdsa)
        n += 200
    best = max(best, n / (time.perf_counter() - start))
print(round(best))
"""


def calibrate(cpu: str | None) -> int:
    """ES256 signatures per second on one core (``cpu``), to tell how fast the host is now."""
    command = [sys.executable, "-c", _CALIBRATE]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return int(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else 0


class Reaper:
    """Every process the bench starts, so that they are stopped on exit, error or Ctrl-C."""

    def __init__(self) -> None:
        self._groups: list[subprocess.Popen[bytes]] = []
        self._children: list[subprocess.Popen[bytes]] = []

    def add_group(self, proc: subprocess.Popen[bytes]) -> None:
        self._groups.append(proc)

    def add_child(self, proc: subprocess.Popen[bytes]) -> None:
        self._children.append(proc)

    def stop_group(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        with contextlib.suppress(ValueError):
            self._groups.remove(proc)

    def close(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5)
        for proc in list(self._groups):
            self.stop_group(proc)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


# -- the tokenward home: database, secrets, CLI -------------------------------------------------


@dataclass
class Home:
    """A fresh tokenward installation in a temporary directory."""

    path: Path
    server_env: dict[str, str] = field(default_factory=dict)
    #: An empty PostgreSQL database instead of the home's SQLite file (``--database-url``).
    database_url: str | None = None
    _secrets: dict[str, str] = field(
        default_factory=lambda: {
            "TOKENWARD_PEPPER": secrets.token_urlsafe(32),
            "TOKENWARD_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        }
    )

    def environ(self, issuer: str = "http://127.0.0.1:8000") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWARD_")}
        env.update(
            {
                "TOKENWARD_HOME": str(self.path),
                "TOKENWARD_DATABASE_URL": f"sqlite:///{self.path}/tokenward.db",
                "TOKENWARD_SECRETS_FILE": str(self.path / "secrets.json"),
                "TOKENWARD_ISSUER": issuer,
                # Each run serves on its own port, so its own issuer: the admin API (whose
                # audience follows the issuer) is not what is measured.
                "TOKENWARD_ADMIN_API": "false",
            }
        )
        if self.database_url is not None:
            # PostgreSQL generates no development secrets: every process gets the same ones.
            env.update({"TOKENWARD_DATABASE_URL": self.database_url, **self._secrets})
        env.update(self.server_env)
        return env

    def cli(self, *args: str) -> Any:
        """Run ``tokenward ARGS --json`` as an operator would and return its JSON output."""
        proc = subprocess.run(
            [sys.executable, "-m", "tokenward", *args, "--json"],
            env=self.environ(),
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"tokenward {shlex.join(args)} failed:\n{proc.stderr.strip()}")
        return json.loads(proc.stdout)


class BenchError(Exception):
    pass


@dataclass
class Credentials:
    """What the token requests of a scenario send."""

    basic: str | None = None  # base64(client_id:client_secret)
    client_id: str | None = None
    assertion_key: ec.EllipticCurvePrivateKey | None = None
    assertion_kid: str | None = None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def create_api(home: Home, spec: ApiSpec) -> None:
    home.cli(
        "apis",
        "create",
        "--identifier",
        spec.identifier,
        "--name",
        f"bench {spec.scope}",
        "--scope",
        spec.scope,
        "--signing-alg",
        spec.signing_alg,
        "--token-format",
        spec.token_format,
    )


def create_secret_client(home: Home, client_id: str, scopes: Sequence[str]) -> Credentials:
    args = ["clients", "create", "--name", client_id, "--client-id", client_id]
    args += ["--auth-method", "client_secret_basic"]
    for scope in scopes:
        args += ["--scope", scope]
    created = home.cli(*args)
    raw = f"{client_id}:{created['client_secret']}".encode()
    return Credentials(basic=base64.b64encode(raw).decode("ascii"), client_id=client_id)


def create_assertion_client(home: Home, client_id: str, scopes: Sequence[str]) -> Credentials:
    """A private_key_jwt client whose ES256 public key is registered as a JWKS."""
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    thumbprint = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()
    digest = hashes.Hash(hashes.SHA256())
    digest.update(thumbprint)
    kid = b64url(digest.finalize())  # RFC 7638
    jwks_path = home.path / f"{client_id}.jwks.json"
    jwks_path.write_text(json.dumps({"keys": [{**jwk, "kid": kid, "alg": "ES256", "use": "sig"}]}))
    args = ["clients", "create", "--name", client_id, "--client-id", client_id]
    args += ["--auth-method", "private_key_jwt", "--jwks-file", str(jwks_path)]
    for scope in scopes:
        args += ["--scope", scope]
    home.cli(*args)
    return Credentials(client_id=client_id, assertion_key=key, assertion_kid=kid)


def make_assertions(
    creds: Credentials, audience: str, count: int, lifetime: int = 240
) -> list[str]:
    """``count`` ES256 client assertions (RFC 7523 §3), each with its own ``jti``."""
    assert creds.assertion_key is not None
    assert creds.client_id is not None
    key = creds.assertion_key
    ecdsa = ec.ECDSA(hashes.SHA256())
    header = b64url(json.dumps({"alg": "ES256", "kid": creds.assertion_kid}).encode())
    now = int(time.time())
    head = json.dumps({"iss": creds.client_id, "sub": creds.client_id, "aud": audience})[:-1]
    tail = f', "iat": {now}, "exp": {now + lifetime}, "jti": "'
    out: list[str] = []
    for _ in range(count):
        payload = (head + tail + secrets.token_urlsafe(18) + '"}').encode()
        signing_input = header + "." + b64url(payload)
        r, s = utils.decode_dss_signature(key.sign(signing_input.encode(), ecdsa))
        out.append(signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
    return out


# -- one server -------------------------------------------------------------------------------


@dataclass
class Placement:
    server_cpus: str | None  # taskset list, None = not pinned
    wrk_cpus: str | None
    note: str

    @property
    def calibration_cpu(self) -> str | None:
        return self.server_cpus.split(",")[-1] if self.server_cpus else None


def placement(workers: int, cpus: Sequence[int]) -> Placement:
    allowed = ",".join(str(c) for c in cpus)
    if workers == 1 and len(cpus) >= 2:
        return Placement(
            str(cpus[1]), str(cpus[0]), f"server on CPU {cpus[1]}, wrk on CPU {cpus[0]}"
        )
    if len(cpus) <= workers:
        return Placement(None, allowed, f"server and wrk share CPUs {allowed}")
    server = ",".join(str(c) for c in cpus[1 : workers + 1])
    return Placement(server, str(cpus[0]), f"server on CPUs {server}, wrk on CPU {cpus[0]}")


class Server:
    def __init__(
        self, home: Home, reaper: Reaper, *, workers: int, cpus: str | None, tag: str
    ) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.log_path = home.path / f"server-{tag}-{self.port}.log"
        command = [sys.executable, "-m", "tokenward", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(workers)]
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        self.command = command
        self._reaper = reaper
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                env=home.environ(self.issuer),
                cwd=home.path,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        reaper.add_group(self.proc)
        self._wait_ready(workers)

    def _wait_ready(self, workers: int) -> None:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(f"tokenward serve exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.issuer}/healthz").status_code == 200:
                        break
                time.sleep(0.1)
            else:
                raise BenchError(f"tokenward serve did not become ready:\n{self.log_tail()}")
        # With several workers /healthz answers as soon as the first one listens.
        deadline = time.monotonic() + 30
        while workers > 1 and time.monotonic() < deadline:
            if len(process_tree(self.proc.pid)) >= workers + 1:
                break
            time.sleep(0.1)
        time.sleep(0.5 * workers)

    def discovery(self) -> dict[str, Any]:
        url = f"{self.issuer}/.well-known/oauth-authorization-server"
        response = httpx.get(url, timeout=5.0)
        response.raise_for_status()
        doc: dict[str, Any] = response.json()
        return doc

    def pids(self) -> set[int]:
        return process_tree(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self) -> tuple[int, Counter[str]]:
        """Error/exception lines and failed-request reasons from the server log."""
        errors = 0
        reasons: Counter[str] = Counter()
        with self.log_path.open(errors="replace") as handle:
            for line in handle:
                if '"level":"error"' in line or line.startswith("Traceback"):
                    errors += 1
                if '"outcome":"failure"' in line:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        event = json.loads(line)["audit"]
                        reasons[f"{event['error']}: {event.get('reason')}"] += 1
        return errors, reasons

    def stop(self) -> None:
        self._reaper.stop_group(self.proc)


# -- requests and wrk ----------------------------------------------------------------------------


def form_body(scenario: Scenario) -> str:
    return f"grant_type=client_credentials&scope={APIS[scenario.api].scope}"


def check_one_request(
    server: Server, scenario: Scenario, creds: Credentials, assertion: str | None
) -> str:
    """One token request must succeed and return the token the scenario expects."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    body = form_body(scenario)
    if scenario.auth == "client_secret_basic":
        assert creds.basic is not None
        headers["Authorization"] = f"Basic {creds.basic}"
    else:
        assert assertion is not None
        body += f"&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}"
    response = httpx.post(f"{server.issuer}/token", content=body, headers=headers, timeout=10.0)
    if response.status_code != 200:
        raise BenchError(f"check request: HTTP {response.status_code} {response.text[:300]}")
    token = response.json().get("access_token", "")
    spec = APIS[scenario.api]
    parts = token.split(".")
    if spec.token_format == "opaque":
        if len(parts) == 3:
            raise Unsupported("the server issued a JWT for an API configured for opaque tokens")
        return "opaque"
    if len(parts) != 3:
        raise BenchError("check request: the access token is not a JWS")
    header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    if header.get("alg") != spec.signing_alg or header.get("typ") != "at+jwt":
        raise BenchError(f"check request: unexpected JWT header {header}")
    return f"{header['alg']} at+jwt"


class Unsupported(Exception):
    pass


@dataclass
class WrkRun:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    non2xx: int
    socket_errors: dict[str, int]
    server_cores: float
    wrk_cores: float
    other_cores: float
    steal_cores: float = 0.0
    exhausted: int = 0
    calibration: int = 0
    process_cores: list[float] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)  # every key=value of the TW_RESULT line

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU time per request: less sensitive to other load than requests/s."""
        return self.server_cores * self.seconds / self.requests * 1e6 if self.requests else 0.0


_RESULT = re.compile(r"^TW_RESULT (.*)$", re.MULTILINE)


def run_wrk(
    *,
    url: str,
    lua: Path,
    env: Mapping[str, str],
    conns: int,
    threads: int,
    seconds: float,
    cpus: str | None,
    server_pids: set[int],
    reaper: Reaper,
) -> WrkRun:
    command = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds:g}s"]
    command += ["--timeout", "5s", "--latency", "-s", str(lua), url]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    out_path = Path(tempfile.mkstemp(prefix="tw-wrk-", suffix=".out")[1])
    try:
        cpu_before = cpu_by_pid(server_pids)
        machine_before = machine_busy_seconds()
        steal_before = steal_seconds()
        started = time.monotonic()
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
            )
        reaper.add_child(proc)
        status, usage = _wait_bounded(proc, seconds + 30)
        elapsed = time.monotonic() - started
        cpu_after = cpu_by_pid(server_pids)
        per_process = sorted(
            ((cpu_after[p] - cpu_before.get(p, 0.0)) / elapsed for p in cpu_after), reverse=True
        )
        server_cpu = sum(cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after)
        machine = machine_busy_seconds() - machine_before
        steal = steal_seconds() - steal_before
        text = out_path.read_text(errors="replace")
    finally:
        out_path.unlink(missing_ok=True)
    match = _RESULT.search(text)
    if status != 0 or match is None:
        raise BenchError(f"wrk failed (status {status}):\n{text[-2000:]}")
    values = {k: int(v) for k, v in (item.split("=") for item in match.group(1).split())}
    wrk_cpu = usage.ru_utime + usage.ru_stime
    return WrkRun(
        requests=values["requests"],
        seconds=values["duration_us"] / 1e6,
        p50_ms=values["p50_us"] / 1000,
        p90_ms=values["p90_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        p999_ms=values["p999_us"] / 1000,
        max_ms=values["max_us"] / 1000,
        non2xx=values["status"],
        socket_errors={k: values[k] for k in ("connect", "read", "write", "timeout") if values[k]},
        server_cores=server_cpu / elapsed,
        wrk_cores=wrk_cpu / elapsed,
        other_cores=(machine - server_cpu - wrk_cpu) / elapsed,
        steal_cores=steal / elapsed,
        process_cores=[round(c, 2) for c in per_process if c >= 0.01],
        exhausted=values.get("exhausted", 0),
        extra=values,
    )


def _wait_bounded(proc: subprocess.Popen[bytes], limit: float) -> tuple[int, Any]:
    """Wait for ``proc`` (killing it after ``limit`` s); return exit status and rusage."""
    deadline = time.monotonic() + limit
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.05)


# -- one scenario ----------------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    warmup: float
    conns: int
    threads: int
    idle_wait: float
    noise: float
    retries: int
    assertion_rate: int
    rounds: int = 1
    database: str = "SQLite, a file in the temporary home"


@dataclass
class Row:
    scenario: Scenario
    conns: int
    placement: Placement
    run: WrkRun | None = None
    skipped: str | None = None
    failed: str | None = None
    notes: list[str] = field(default_factory=list)
    rounds: list[WrkRun] = field(default_factory=list)  # every round's run, in order

    @property
    def ok(self) -> bool:
        if self.failed:
            return False
        if self.run is None:
            return True
        return not (self.run.non2xx or self.run.socket_errors or self.run.exhausted)


def run_scenario(
    scenario: Scenario,
    home: Home,
    creds: Credentials,
    opts: Options,
    cpus: Sequence[int],
    reaper: Reaper,
) -> Row:
    where = placement(scenario.workers, cpus)
    row = Row(scenario, opts.conns, where)
    server = Server(
        home, reaper, workers=scenario.workers, cpus=where.server_cpus, tag=scenario.name
    )
    try:
        log(f"{scenario.name}: tokenward serve --workers {scenario.workers} on {server.issuer}")
        assertions_file = home.path / f"assertions-{scenario.name}.txt"

        def lua_env(seconds: float) -> tuple[Path, dict[str, str]]:
            env = {"TW_BODY": form_body(scenario), "TW_THREADS": str(opts.threads)}
            if scenario.auth == "client_secret_basic":
                assert creds.basic is not None
                return LUA_BASIC, {**env, "TW_BASIC": creds.basic}
            count = math.ceil(seconds * opts.assertion_rate * scenario.workers) + 1000
            started = time.monotonic()
            lines = make_assertions(creds, server.issuer, count)
            assertions_file.write_text("\n".join(lines) + "\n")
            log(f"  {count:,} client assertions generated in {time.monotonic() - started:.1f} s")
            return LUA_ASSERTION, {**env, "TW_ASSERTIONS": str(assertions_file)}

        first = None
        if scenario.auth == "private_key_jwt":
            first = make_assertions(creds, server.issuer, 1)[0]
        try:
            shape = check_one_request(server, scenario, creds, first)
        except Unsupported as exc:
            row.skipped = str(exc)
            return row
        log(f"  check request: 200, {shape}")

        url = f"{server.issuer}/token"
        pids = server.pids()
        if opts.warmup > 0:
            lua, env = lua_env(opts.warmup)
            run_wrk(
                url=url,
                lua=lua,
                env=env,
                conns=opts.conns,
                threads=opts.threads,
                seconds=opts.warmup,
                cpus=where.wrk_cpus,
                server_pids=pids,
                reaper=reaper,
            )
        best: WrkRun | None = None
        for attempt in range(opts.retries + 1):
            idle = wait_until_idle(opts.idle_wait, opts.noise)
            if idle >= opts.noise:
                log(f"  machine still busy ({idle:.2f} cores) after {opts.idle_wait:g} s; running")
            lua, env = lua_env(opts.duration)
            speed = calibrate(where.calibration_cpu)
            run = run_wrk(
                url=url,
                lua=lua,
                env=env,
                conns=opts.conns,
                threads=opts.threads,
                seconds=opts.duration,
                cpus=where.wrk_cpus,
                server_pids=pids,
                reaper=reaper,
            )
            run.calibration = speed
            log(
                f"  {run.rps:,.0f} req/s  p50 {run.p50_ms:.2f} ms  p99 {run.p99_ms:.2f} ms  "
                f"server {run.server_cores:.2f} cores  wrk {run.wrk_cores:.2f}  "
                f"other {run.other_cores:.2f}  steal {run.steal_cores:.2f}  non-2xx {run.non2xx}  "
                f"{run.cpu_us_per_request:.0f} µs CPU/req  calibration {speed:,} ES256 signs/s"
            )
            if best is None or run.other_cores < best.other_cores:
                best = run
            if run.other_cores < opts.noise:
                break
            if attempt < opts.retries:
                log(f"  other processes used {run.other_cores:.2f} cores; repeating the run")
        assert best is not None
        row.run = best
        if best.other_cores >= opts.noise:
            row.notes.append(f"other processes used {best.other_cores:.2f} cores during the run")
        if scenario.workers > 1:
            split = " + ".join(f"{c:.2f}" for c in best.process_cores)
            row.notes.append(f"CPU of the server's busy processes: {split} cores")
        if best.exhausted:
            row.notes.append(
                f"{best.exhausted} requests found the assertion file exhausted (replays); "
                "raise --assertion-rate"
            )
        if server.proc.poll() is not None:
            row.failed = "the server exited during the run"
    except BenchError as exc:
        row.failed = str(exc)
    finally:
        server.stop()  # the server flushes its audit buffer on the way out
        with contextlib.suppress(OSError):
            (home.path / f"assertions-{scenario.name}.txt").unlink()
    if not row.ok:
        errors, reasons = server.log_problems()
        detail = ", ".join(f"{k} x{v}" for k, v in reasons.most_common(5))
        row.notes.append(f"server log: {errors} error lines; failures: {detail or 'none'}")
    return row


# -- report -----------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fmt_ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def table(rows: Sequence[Row]) -> str:
    many = any(len(row.rounds) > 1 for row in rows)
    lines = [
        "| scenario | workers | conns | requests/s | p50 | p99 | non-2xx | server CPU (cores) "
        "| server CPU µs/request | wrk CPU | other load | host steal "
        "| calibration (ES256 signs/s) |"
        + (" every round: requests/s (p99) | worst vs best |" if many else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---|---:|" if many else ""),
    ]
    blank = " |" * (11 if many else 9)
    for row in rows:
        s = row.scenario
        head = f"| {s.label} | {s.workers} | {row.conns} "
        if row.skipped:
            lines.append(head + "| skipped (see notes) |" + blank)
        elif row.failed or row.run is None:
            lines.append(head + "| FAILED (see notes) |" + blank)
        else:
            r = row.run
            errors = r.non2xx + sum(r.socket_errors.values())
            flag = "" if row.ok else " (!)"
            line = (
                head
                + f"| {r.rps:,.0f} | {_fmt_ms(r.p50_ms)} | {_fmt_ms(r.p99_ms)} | {errors}{flag} "
                f"| {r.server_cores:.2f} | {r.cpu_us_per_request:.0f} | {r.wrk_cores:.2f} "
                f"| {max(r.other_cores, 0):.2f} | {r.steal_cores:.2f} | {r.calibration:,} |"
            )
            if many:
                every = ", ".join(f"{x.rps:,.0f} ({_fmt_ms(x.p99_ms)})" for x in row.rounds)
                rates = [x.rps for x in row.rounds]
                line += f" {every} | {min(rates) / max(rates) - 1:+.0%} |"
            lines.append(line)
    return "\n".join(lines)


def ratios(rows: Sequence[Row]) -> str | None:
    """Each scenario against ES256 JWT with client_secret_basic and as many workers, round by
    round (the two ran in the same round, a few minutes apart at most) and the median: the rate over
    the JWT rate, and the JWT's server CPU per request over the scenario's (the same ratio when
    CPU is what limits both, and less moved by a host that slows down between two runs)."""
    base = {r.scenario.workers: r for r in rows if r.scenario.key == "es256" and r.rounds}
    lines = []
    for row in rows:
        ref = base.get(row.scenario.workers)
        if row is ref or ref is None or len(row.rounds) != len(ref.rounds):
            continue
        pairs = list(zip(row.rounds, ref.rounds, strict=True))
        rate = [x.rps / y.rps for x, y in pairs if y.rps]
        cpu = [y.cpu_us_per_request / x.cpu_us_per_request for x, y in pairs if x.requests]
        if not rate or not cpu:
            continue
        lines.append(
            f"| {row.scenario.label} | {row.scenario.workers} "
            f"| {', '.join(f'{v:.2f}' for v in rate)} | {statistics.median(rate):.2f} "
            f"| {', '.join(f'{v:.2f}' for v in cpu)} | {statistics.median(cpu):.2f} |"
        )
    if not lines:
        return None
    head = [
        "| scenario | workers | rate / JWT rate, each round | median "
        "| JWT CPU / its CPU per request, each round | median |",
        "|---|---:|---|---:|---|---:|",
    ]
    return "\n".join(head + lines)


def notes(rows: Sequence[Row], cpus: Sequence[int], opts: Options) -> list[str]:
    out = [
        f"Each run: {opts.warmup:g} s warm-up, then {opts.duration:g} s measured; wrk "
        f"{opts.threads} thread(s), {opts.conns} keep-alive connections, plain HTTP on "
        "127.0.0.1, `POST /token` with client_secret_basic (or a client assertion) and "
        "`grant_type=client_credentials&scope=...`. p50/p99 are wrk's (closed loop: "
        "coordinated omission makes p99 indicative).",
        "server CPU = utime+stime of the server's process tree / wall time (1.00 = one core "
        "busy); server CPU µs/request = that CPU time / requests; wrk CPU likewise; other load "
        "= the rest of the machine during the run; host steal = CPU time the hypervisor gave "
        "to others while this machine's CPUs were ready to run (/proc/stat), in cores.",
        "non-2xx = responses with status >= 400 plus socket errors; all others were 200.",
        f"database: {opts.database}.",
        "calibration = `cryptography` ES256 signatures/s on one server core just before the "
        "run: a yardstick for how fast this (shared, virtual) host was at that moment.",
    ]
    placements = sorted({(r.scenario.workers, r.placement.note) for r in rows})
    out.append("CPU placement: " + "; ".join(f"{w} worker(s): {n}" for w, n in placements) + ".")
    if len(cpus) <= 2 and any(r.scenario.workers >= len(cpus) for r in rows):
        out.append(
            f"This machine has {len(cpus)} CPU(s): with {len(cpus)} workers the load generator "
            "and the server share the machine, so wrk's CPU is taken from the server."
        )
    for row in rows:
        where = f"{row.scenario.label}, {row.scenario.workers} worker(s)"
        if row.skipped:
            out.append(f"{where}: skipped: {row.skipped}.")
        if row.failed:
            out.append(f"{where}: FAILED: {row.failed}")
        for note in row.notes:
            out.append(f"{where}: {note}")
    return out


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info(cpus: Sequence[int]) -> list[tuple[str, str]]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        kib = int(handle.readline().split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else ""
    git = subprocess.run(
        ["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        ("CPU", f"{len(cpus)} CPU(s) usable (nproc), {model}"),
        ("memory", mem),
        ("OS", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("packages", ", ".join(f"{p} {_version(p)}" for p in PACKAGES)),
        ("load generator", wrk_version.split(" Copyright")[0]),
        ("git", git or "unknown"),
    ]


def render_markdown(
    rows: Sequence[Row], cpus: Sequence[int], opts: Options, command: str, when: str
) -> str:
    parts = [
        "# Token endpoint benchmark",
        "",
        f"Measured {when} with:",
        "",
        f"    {command}",
        "",
        "| item | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine_info(cpus)],
        "",
        table(rows),
        "",
        *([ratio, ""] if (ratio := ratios(rows)) else []),
        *[f"- {n}" for n in notes(rows, cpus, opts)],
        "",
    ]
    return "\n".join(parts)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s warm-up, 3 s runs")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per scenario (default 2)")
    parser.add_argument("--conns", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run scenarios whose name (e.g. es256-1w, rs256) starts with NAME; repeatable",
    )
    parser.add_argument(
        "--workers", type=int, action="append", default=[], help="only these worker counts"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"write the Markdown report here (default {DEFAULT_OUT.relative_to(REPO_DIR)}; "
        "--quick writes nothing unless --out is given)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON")
    parser.add_argument(
        "--idle-wait", type=float, help="max seconds to wait for an idle machine (default 60)"
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.15,
        help="repeat a run if other processes used this many cores (default 0.15)",
    )
    parser.add_argument("--retries", type=int, default=2, help="repeats of a noisy run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every scenario this many times, alternating (round after round); the table "
        "reports each scenario's median run and every round's rate",
    )
    parser.add_argument(
        "--assertion-rate",
        type=int,
        default=10_000,
        help="private_key_jwt: assertions generated per second of run per worker",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra TOKENWARD_* setting for the server and CLI (experiments); repeatable",
    )
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="an empty PostgreSQL database (postgresql://...) instead of SQLite; the bench "
        "migrates it and registers its APIs and clients there",
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 3.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    if args.idle_wait is None:
        args.idle_wait = 10.0 if args.quick else 60.0
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 120:
        parser.error("--duration must be in (0, 600] and --warmup in [0, 120]")
    if not 1 <= args.conns <= 10_000 or not 1 <= args.threads <= 64:
        parser.error("--conns must be in [1, 10000] and --threads in [1, 64]")
    if args.threads > args.conns:
        parser.error("--threads must not exceed --conns")
    for item in args.server_env:
        if "=" not in item or not item.startswith("TOKENWARD_"):
            parser.error(f"--server-env takes TOKENWARD_NAME=VALUE, not {item!r}")
    return args


def select(args: argparse.Namespace) -> list[Scenario]:
    chosen = [
        s
        for s in SCENARIOS
        if (not args.only or any(s.name.startswith(p) for p in args.only))
        and (not args.workers or s.workers in args.workers)
    ]
    if not chosen:
        raise SystemExit(f"no scenario matches; known: {', '.join(s.name for s in SCENARIOS)}")
    return chosen


@contextlib.contextmanager
def temporary_home(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tokenward-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install {tool})")
    scenarios = select(args)
    cpus = sorted(os.sched_getaffinity(0))
    opts = Options(
        duration=args.duration,
        warmup=args.warmup,
        conns=args.conns,
        threads=args.threads,
        idle_wait=args.idle_wait,
        noise=args.noise,
        retries=args.retries,
        rounds=args.rounds,
        assertion_rate=args.assertion_rate,
    )
    if args.database_url is not None:
        opts.database = "PostgreSQL on this machine (--database-url)"
    command = shlex.join(["python", "bench/bench_token.py", *sys.argv[1:]])
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    reaper = Reaper()
    rows: list[Row] = []
    try:
        with temporary_home(args.keep_home) as path:
            env = dict(item.split("=", 1) for item in args.server_env)
            home = Home(path, env, database_url=args.database_url)
            rows = run_all(scenarios, home, opts, cpus, reaper)
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    finally:
        reaper.close()

    print(table(rows))
    print()
    if (ratio := ratios(rows)) is not None:
        print(ratio)
        print()
    for note in notes(rows, cpus, opts):
        print(f"- {note}")
    out = args.out or (None if args.quick else DEFAULT_OUT)
    if out is not None and not args.no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_markdown(rows, cpus, opts, command, when))
        log(f"wrote {out}")
    if args.json is not None:
        args.json.write_text(json.dumps([_row_json(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.ok for r in rows) else 1


def _row_json(row: Row) -> dict[str, Any]:
    data: dict[str, Any] = {
        "scenario": row.scenario.name,
        "label": row.scenario.label,
        "workers": row.scenario.workers,
        "conns": row.conns,
        "placement": row.placement.note,
        "skipped": row.skipped,
        "failed": row.failed,
        "notes": row.notes,
    }
    if row.run is not None:
        data.update({k: v for k, v in vars(row.run).items()})
        data["rps"] = round(row.run.rps, 1)
        data["rounds_rps"] = [round(run.rps, 1) for run in row.rounds]
    return data


def run_all(
    scenarios: Sequence[Scenario], home: Home, opts: Options, cpus: Sequence[int], reaper: Reaper
) -> list[Row]:
    """Register APIs and clients through the CLI, then run each supported scenario."""
    log(f"setting up a fresh tokenward home in {home.path}")
    secret_scopes = [APIS[a].scope for a in ("es256", "rs256")]
    for name in ("es256", "rs256"):
        create_api(home, APIS[name])
    secret_creds = create_secret_client(home, "bench-basic", secret_scopes)

    probe = Server(home, reaper, workers=1, cpus=None, tag="probe")
    try:
        doc = probe.discovery()
    finally:
        probe.stop()

    by_scenario: dict[str, list[Row]] = {s.name: [] for s in scenarios}
    creds_by_auth: dict[tuple[str, str], Credentials] = {}
    # In a round, the scenarios with one worker run back to back, then those with two: the
    # ratios (ratios()) compare runs of one round, closer in time than in the table's order.
    order = sorted(scenarios, key=lambda s: s.workers)
    for round_no in range(1, opts.rounds + 1):
        if opts.rounds > 1:
            log(f"round {round_no} of {opts.rounds}")
        for scenario in order:
            done = by_scenario[scenario.name]
            if done and (done[0].skipped or done[0].failed):
                continue
            reason = scenario.unsupported(doc)
            if reason is None:
                try:
                    creds = _credentials_for(scenario, home, secret_creds, creds_by_auth)
                except BenchError as exc:
                    reason = f"setup failed: {exc}"
            if reason is not None:
                log(f"{scenario.name}: skipped ({reason})")
                where = placement(scenario.workers, cpus)
                done.insert(0, Row(scenario, opts.conns, where, skipped=reason))
                continue
            row = run_scenario(scenario, home, creds, opts, cpus, reaper)
            if row.failed or row.skipped:
                done.insert(0, row)  # stands for the scenario (median_row)
            else:
                done.append(row)
    return [median_row(by_scenario[s.name]) for s in scenarios]


def median_row(rows: Sequence[Row]) -> Row:
    """One scenario's rounds as one row: a skipped or failed round stands for the scenario
    (run_all puts it first); otherwise the round with the median rate (the lower of the two
    middle ones for an even count), carrying every round's run and every round's notes."""
    first = rows[0]
    if first.skipped or first.failed or first.run is None or len(rows) == 1:
        first.rounds = [first.run] if first.run is not None else []
        return first
    runs = [row.run for row in rows if row.run is not None]
    middle = sorted(rows, key=lambda row: row.run.rps if row.run else 0.0)[(len(rows) - 1) // 2]
    notes = [f"round {i}: {note}" for i, row in enumerate(rows, 1) for note in row.notes]
    return Row(
        middle.scenario, middle.conns, middle.placement, middle.run, notes=notes, rounds=runs
    )


def _credentials_for(
    scenario: Scenario,
    home: Home,
    secret_creds: Credentials,
    cache: dict[tuple[str, str], Credentials],
) -> Credentials:
    if scenario.api in ("es256", "rs256") and scenario.auth == "client_secret_basic":
        return secret_creds
    key = (scenario.api, scenario.auth)
    if key not in cache:
        if scenario.api not in ("es256", "rs256"):
            create_api(home, APIS[scenario.api])
        client_id = f"bench-{scenario.api}-{scenario.auth.replace('_', '-')}"
        scopes = [APIS[scenario.api].scope]
        if scenario.auth == "private_key_jwt":
            cache[key] = create_assertion_client(home, client_id, scopes)
        else:
            cache[key] = create_secret_client(home, client_id, scopes)
    return cache[key]


if __name__ == "__main__":
    sys.exit(main())
