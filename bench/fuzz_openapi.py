"""Fuzz the services' OpenAPI schemas with schemathesis, bounded in time.

Starts the inference service (plain backend, small digits model, strict
limits) and the aggregator on free ports of 127.0.0.1, each in a thread. Then
it runs ``schemathesis run <url>/openapi.json`` against each, with the bearer
token, a time budget (``--seconds``, split between the two) and a fixed seed.
The checks:

* no 5xx (``not_a_server_error``);
* the status codes, content types and response bodies that the schema declares.

Before schemathesis, a fixed corpus of hostile bodies goes to every POST
operation of each schema (:func:`corpus`): binary frames whose JSON header is
30,000 nested ``[``, 10,000 nested objects, a 5,000-digit integer (past
Python's conversion limit), invalid UTF-8, a header length past the body, and
the same deep and long structures as ``application/json``.  Every answer must
be a 4xx.  ``--corpus-only`` runs just that part (no schemathesis needed).

``positive_data_acceptance`` is excluded. A random byte string that matches
``format: binary`` is not a valid ciphertext frame, and the server is meant to
refuse it with a 4xx. After the run, the script checks that the server still
answers its health check.

Prints a summary and writes ``bench/results/fuzz_openapi.json``, which holds
the failing checks with their messages; the full event log stays in a temporary directory. It needs
``pip install schemathesis`` (see the report on which extra to add).

    python bench/fuzz_openapi.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_json

CHECKS_EXCLUDED = "positive_data_acceptance"


def _frame(header: bytes) -> bytes:
    import struct

    return b"SQNT" + struct.pack(">I", len(header)) + header


#: (name, content type, body): hostile inputs for every POST operation.
CORPUS: list[tuple[str, str, bytes]] = [
    ("frame: 30,000 nested [", "application/octet-stream", _frame(b"[" * 30_000)),
    ("frame: 10,000 nested objects", "application/octet-stream", _frame(b'{"a":' * 10_000)),
    ("frame: 5,000-digit int", "application/octet-stream", _frame(b"1" * 5_000)),
    ("frame: invalid UTF-8", "application/octet-stream", _frame(b"\xff\xfe\xfd")),
    ("frame: header past the body", "application/octet-stream", b"SQNT\x00\x00\xff\xff{}"),
    ("frame: bool version", "application/octet-stream",
     _frame(b'{"type":"x","version":true,"meta":{},"payload_len":0,"payload_sha256":""}')),
    ("json: 30,000 nested [", "application/json", b"[" * 30_000 + b"]" * 30_000),
    ("json: 10,000 nested objects", "application/json", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    ("json: 5,000-digit int", "application/json", b'{"n": ' + b"9" * 5_000 + b"}"),
    ("json: invalid UTF-8", "application/json", b'{"a": "\xff"}'),
]


def corpus(url: str, token: str) -> dict[str, Any]:
    """Send every :data:`CORPUS` body to every POST operation of ``url``'s schema; count non-4xx answers."""
    import httpx

    schema = httpx.get(f"{url}/openapi.json", timeout=30).json()
    paths = [path.replace("{session_id}", "s" * 43).replace("{round_id}", "r" * 22).replace("{id}", "x")
             for path, ops in schema["paths"].items() if "post" in ops]
    bad, sent = [], 0
    for path in paths:
        for name, ctype, body in CORPUS:
            r = httpx.post(f"{url}{path}", content=body, timeout=60,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
            sent += 1
            if not 400 <= r.status_code < 500:
                bad.append({"path": path, "case": name, "status": r.status_code, "body": r.text[:200]})
    alive = httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
    return {"sent": sent, "not_4xx": bad, "passed": not bad and alive, "server_alive_after": alive}


def _tiny_model() -> Any:
    import torch
    from torch import nn

    from secquant import quantize_model
    from secquant.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset("digits")
    return quantize_model(nn.Sequential(nn.Linear(64, 10)).eval(), data.x_train, bits=6)


def _schemathesis() -> str:
    exe = Path(sys.executable).with_name("schemathesis")
    found = str(exe) if exe.exists() else shutil.which("schemathesis")
    if not found:
        raise SystemExit("schemathesis is not installed: pip install schemathesis")
    return found


def fuzz(name: str, url: str, token: str, seconds: float, seed: int, report_dir: Path) -> dict[str, Any]:
    """One bounded schemathesis run; returns its summary."""
    import httpx

    ndjson = report_dir / f"{name}.ndjson"
    cmd = [_schemathesis(), "run", f"{url}/openapi.json", "--url", url, "-H", f"Authorization: Bearer {token}",
           "--checks", "all", "--exclude-checks", CHECKS_EXCLUDED, "--max-time", str(int(seconds)),
           "--seed", str(seed), "--request-timeout", "30", "--report", "ndjson", "--report-ndjson-path",
           str(ndjson), "--workers", "1"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300)
    wall = time.perf_counter() - t0
    events = [json.loads(line) for line in ndjson.read_text().splitlines()] if ndjson.exists() else []
    cases = sum(1 for e in events if "ScenarioFinished" in e)
    failures = []
    for e in events:
        for checks in e.get("ScenarioFinished", {}).get("checks", {}).values():
            for check in checks:
                if check.get("status") == "failure":
                    info = check.get("failure_info", {}).get("failure", {})
                    failures.append({"check": check.get("name"), "operation": info.get("operation"),
                                     "message": str(info.get("message", ""))[:500]})
    alive = httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
    tail = proc.stdout.strip().splitlines()[-25:]
    return {"target": name, "exit_code": proc.returncode, "passed": proc.returncode == 0 and alive,
            "scenarios": cases, "failures": failures[:20], "wall_s": wall, "server_alive_after": alive, "summary": tail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total time budget, split over the targets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default="service,aggregator")
    parser.add_argument("--corpus-only", action="store_true", help="only the fixed hostile corpus, no schemathesis")
    args = parser.parse_args(argv)

    from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
    from secquant.protocol.inference import ServiceConfig, create_app
    from secquant.protocol.inference.binding import ModelBinding
    from secquant.protocol.runner import ServerThread

    token = secrets.token_urlsafe(32)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="secquant-fuzz-") as tmp:
        for name in targets:
            if name == "service":
                app = create_app(ModelBinding.build(_tiny_model(), "plain"),
                                 ServiceConfig(token=token, cache_dir=f"{tmp}/keys", max_request_bytes=1 << 20,
                                               max_sessions=64, session_ttl=600))
            elif name == "aggregator":
                from cryptography.hazmat.primitives.asymmetric import ed25519

                keyholder = ed25519.Ed25519PrivateKey.generate().public_key()  # rounds need its signature
                app = create_aggregator_app(AggregatorConfig(keyholder_key=keyholder, token=token,
                                                             max_request_bytes=1 << 20, max_rounds=64))
            else:
                raise SystemExit(f"unknown target {name!r}")
            with ServerThread(app) as server:
                hostile = corpus(server.url, token)
                print(f"{name}: hostile corpus, {hostile['sent']} requests, non-4xx answers: {hostile['not_4xx']}")
                if args.corpus_only:
                    rows.append({"target": name, "passed": hostile["passed"], "exit_code": 0, "scenarios": 0,
                                 "wall_s": 0.0, "server_alive_after": hostile["server_alive_after"],
                                 "corpus": hostile})
                    continue
                row = fuzz(name, server.url, token, args.seconds / len(targets), args.seed, Path(tmp))
                row["corpus"] = hostile
                row["passed"] = row["passed"] and hostile["passed"]
                rows.append(row)
            print("\n".join(rows[-1].get("summary", [])))
    print(table(rows, ["target", "passed", "exit_code", "scenarios", "wall_s", "server_alive_after"]))
    path = write_json("fuzz_openapi", {"config": vars(args), "excluded_checks": CHECKS_EXCLUDED, "results": rows})
    print(f"wrote {path}")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
