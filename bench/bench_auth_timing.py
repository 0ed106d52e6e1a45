"""Timing of failed client authentications against a real ``tokenward serve``: no existence oracle.

    python bench/bench_auth_timing.py                     # 300 requests per case
    python bench/bench_auth_timing.py --requests 500 --server-env TOKENWARD_DATABASE_URL=...

Five failure cases, each answered ``401 invalid_client`` with the same body and headers:
unknown client id, wrong secret, disabled client (right secret), bad assertion signature
(a registered client, a key it did not register) and unknown assertion ``sub``. A successful
client_secret_basic request is measured alongside for reference. Requests go round-robin over
the cases on one keep-alive connection each, so machine noise falls on every case alike;
the table gives the median and p90 latency seen by the client, in milliseconds. The throttle
is raised out of the way (this measures the work of a failure, not the 429).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from bench_token import Home, free_port
from joserfc.jwk import ECKey

from tokenward.client import ClientKey
from tokenward.client._assertion import ASSERTION_TYPE, client_assertion

API = "https://api.example.com"
FORM = {"grant_type": "client_credentials", "scope": "read"}


def setup(home: Home) -> dict[str, Any]:
    home.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
    secret = home.cli("clients", "create", "--name", "s", "--scope", "read")
    disabled = home.cli("clients", "create", "--name", "d", "--scope", "read")
    subprocess.run(
        [sys.executable, "-m", "tokenward", "clients", "disable", disabled["client_id"]],
        env=home.environ(),
        check=True,
        capture_output=True,
    )
    key = ECKey.generate_key("P-256")
    pem = home.path / "pk.pem"
    pem.write_bytes(key.as_pem(private=True))
    client_key = ClientKey.from_file(pem)
    jwks = home.path / "pk.jwks.json"
    public = {**key.as_dict(private=False), "kid": client_key.kid, "alg": "ES256"}
    jwks.write_text(json.dumps({"keys": [public]}))
    pk = home.cli(
        "clients", "create", "--name", "pk", "--scope", "read",
        "--auth-method", "private_key_jwt", "--jwks-file", str(jwks),
    )  # fmt: skip
    # A key the server does not know, under the registered kid: a bad signature.
    stranger = ClientKey.from_pem(
        ECKey.generate_key("P-256").as_pem(private=True), kid=client_key.kid
    )
    return {
        "secret": secret,
        "disabled": disabled,
        "pk": pk["client_id"],
        "key": client_key,
        "stranger": stranger,
    }


def cases(url: str, issuer: str, seed: dict[str, Any]) -> dict[str, Callable[[int], int]]:
    http = httpx.Client(timeout=30)
    token = f"{url}/token"
    secret_id, secret = seed["secret"]["client_id"], seed["secret"]["client_secret"]

    def basic(client_id: str, value: str) -> int:
        return http.post(token, data=FORM, auth=(client_id, value)).status_code

    def assertion(sub: str, key: ClientKey) -> int:
        signed = client_assertion(client_id=sub, audience=issuer, key=key, secret=None)
        form = {**FORM, "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
        return http.post(token, data=form).status_code

    disabled = seed["disabled"]
    return {
        "unknown client id": lambda i: basic(f"nosuch-{i}", secret),
        "wrong secret": lambda i: basic(secret_id, f"wrong-{i}"),
        "disabled client": lambda i: basic(disabled["client_id"], disabled["client_secret"]),
        "bad assertion signature": lambda i: assertion(seed["pk"], seed["stranger"]),
        "unknown assertion sub": lambda i: assertion(f"nosuch-{i}", seed["key"]),
        "(success, for reference)": lambda i: basic(secret_id, secret),
    }


def measure(run: dict[str, Callable[[int], int]], requests: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in run}
    for i in range(requests + 20):
        for name, send in run.items():
            started = time.perf_counter()
            status = send(i)
            elapsed = time.perf_counter() - started
            expected = 200 if name.startswith("(") else 401
            if status != expected:
                raise SystemExit(f"{name}: answered {status}, expected {expected}")
            if i >= 20:  # the first rounds warm the connections and caches
                samples[name].append(elapsed * 1000)
    return samples


def table(samples: dict[str, list[float]]) -> str:
    lines = ["| case | median ms | p90 ms |", "|---|---:|---:|"]
    for name, values in samples.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        lines.append(f"| {name} | {statistics.median(values):.2f} | {p90:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per case")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as path:
        server_env = {
            "TOKENWARD_FAILED_AUTH_LIMIT": "100000000",
            "TOKENWARD_FAILED_AUTH_LIMIT_PER_ADDRESS": "100000000",
            "TOKENWARD_LOG_LEVEL": "WARNING",
            **dict(item.split("=", 1) for item in args.server_env),
        }
        home = Home(Path(path), server_env)
        seed = setup(home)
        server = subprocess.Popen(
            [sys.executable, "-m", "tokenward", "serve", "--port", str(port)],
            env=home.environ(issuer),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{issuer}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            samples = measure(cases(issuer, issuer, seed), args.requests)
        finally:
            server.terminate()
            server.wait(15)
    print(f"{args.requests} requests per case, round-robin, one keep-alive connection:")
    print(table(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
