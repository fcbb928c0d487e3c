"""Load test of the encrypted-inference service: N concurrent clients × a fixed number of requests.

For each scheme it starts ``secquant serve`` as a child process on a free port
of 127.0.0.1. The digits MLP is 64 -> 16 -> Square -> 10, with 6-bit weights.
The service spec is signed with a fresh operator key that every client
trusts.  N client threads (this process) each open a session and send
``--requests`` batches of ``--batch`` digits. It measures:

* the round-trip latency of every evaluate request (HTTP + server evaluation);
* end-to-end latency (encrypt + request + decrypt), and throughput;
* that nothing is lost or corrupted: every answer is decrypted and compared
  with ``qm.forward_int``. BFV and Paillier must match bit for bit; CKKS must
  stay within ``parameters()["max_abs_error_int"]``.

Prints a table and writes ``bench/results/load_test.json``.

    python bench/load_test.py --schemes plain,bfv,ckks,paillier --clients 4 --requests 10 --batch 4
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_json

ROOT = Path(__file__).resolve().parents[1]


def build_model(epochs: int) -> Any:
    """The digits MLP, trained briefly and quantized to 6-bit weights."""
    import torch
    from torch import nn

    from secquant import quantize_model
    from secquant.data import load_dataset
    from secquant.nn import Square

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.tensor(data.x_train), torch.tensor(data.y_train)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return quantize_model(model.eval(), data.x_train, bits=6), data.x_test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: Path, scheme: str, token: str, cache: str, clients: int,
                 sign_key: Path) -> tuple[subprocess.Popen, str]:
    """``secquant serve`` in a child process; waits (bounded) until healthy."""
    import httpx

    port = free_port()
    args = [sys.executable, "-m", "secquant", "serve", str(model), "--scheme", scheme, "--port", str(port),
            "--cache-dir", cache, "--max-sessions", str(clients + 2), "--max-sessions-per-token", str(clients + 2),
            "--max-concurrent-requests", str(max(4, clients)), "--sign-key", str(sign_key)]
    if scheme == "paillier":
        args += ["--option", "interactive=true"]
    proc = subprocess.Popen(args, env=dict(os.environ, SECQUANT_TOKEN=token), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 120 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_client(url: str, token: str, qm: Any, batches: list[np.ndarray], tolerance: float,
               out: dict[str, Any], trusted: Path, scheme: str) -> None:
    """One client: open a session (the spec signed by the operator key), send every batch, check every answer."""
    from secquant.protocol import Client, SecurityFloor

    lat, e2e, ok, wrong, errors = [], [], 0, 0, []
    try:
        floor = SecurityFloor(allow_insecure=scheme == "plain")  # plain encrypts nothing: the client opts in
        client = Client(url, token=token, model=qm, trusted=[trusted], floor=floor).open()
    except Exception as exc:
        out.update(lat=[], e2e=[], ok=0, wrong=0, errors=[f"open: {exc}"] + ["not sent"] * len(batches))
        return
    try:
        for x in batches:
            xq = qm.quantize_input(x)
            t0 = time.perf_counter()
            try:
                got = client.forward_int(xq)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            e2e.append(time.perf_counter() - t0)
            lat.append(client.last_timings["request"] / client.last_timings["round_trips"])
            diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(qm.forward_int(xq), dtype=np.float64))
            if got.shape == (len(x), *qm.output_shape) and diff.max() <= tolerance:
                ok += 1
            else:
                wrong += 1
    finally:
        client.close()
    out.update(lat=lat, e2e=e2e, ok=ok, wrong=wrong, errors=errors)


def bench_scheme(scheme: str, qm: Any, x: np.ndarray, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Serve ``scheme``, run the clients, summarize."""
    from secquant.protocol.inference.binding import ModelBinding

    model = workdir / "model.npz"
    qm.save(model)
    tolerance = 0.0
    if scheme == "ckks":
        tolerance = float(ModelBinding.build(qm, "ckks").em.parameters()["max_abs_error_int"])
    token = secrets.token_urlsafe(32)
    from secquant.signing import generate_signing_keys

    private, public = generate_signing_keys(workdir / f"operator-{scheme}", "operator")
    proc, url = start_server(model, scheme, token, str(workdir / f"keys-{scheme}"), args.clients, private)
    rng = np.random.default_rng(0)
    plans = [[x[rng.integers(0, len(x), args.batch)] for _ in range(args.requests)] for _ in range(args.clients)]
    results: list[dict[str, Any]] = [{} for _ in range(args.clients)]
    try:
        threads = [threading.Thread(target=run_client,
                                    args=(url, token, qm, plans[i], tolerance, results[i], public, scheme))
                   for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.timeout)
        wall = time.perf_counter() - t0
    finally:
        stop(proc)
    lat = np.array([v for r in results for v in r.get("lat", [])])
    e2e = np.array([v for r in results for v in r.get("e2e", [])])
    sent = args.clients * args.requests
    ok = sum(r.get("ok", 0) for r in results)
    wrong = sum(r.get("wrong", 0) for r in results)
    errors = [e for r in results for e in r.get("errors", [])]
    pct = (lambda a, q: float(np.percentile(a, q)) * 1e3 if a.size else None)  # noqa: E731
    return {
        "scheme": scheme, "clients": args.clients, "requests": sent, "batch": args.batch, "ok": ok,
        "wrong": wrong, "errors": len(errors), "lost": sent - ok - wrong - len(errors),
        "wall_s": wall, "req_per_s": ok / wall, "inputs_per_s": ok * args.batch / wall,
        "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99), "max_ms": pct(lat, 100),
        "e2e_p50_ms": pct(e2e, 50), "e2e_p99_ms": pct(e2e, 99), "error_samples": errors[:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schemes", default="plain,bfv,ckks,paillier")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=10, help="requests per client")
    parser.add_argument("--batch", type=int, default=4, help="digits per request")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for each client thread")
    parser.add_argument("--output", default="load_test", help="name of the JSON in bench/results/")
    args = parser.parse_args(argv)
    qm, x = build_model(args.epochs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="secquant-load-") as tmp:
        for scheme in [s.strip() for s in args.schemes.split(",") if s.strip()]:
            rows.append(bench_scheme(scheme, qm, x, args, Path(tmp)))
            print(table(rows[-1:], ["scheme", "clients", "requests", "ok", "wrong", "errors", "lost", "req_per_s",
                                    "inputs_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "e2e_p50_ms"]),
                  flush=True)
    print()
    print(table(rows, ["scheme", "clients", "requests", "ok", "wrong", "errors", "lost", "req_per_s", "inputs_per_s",
                       "p50_ms", "p90_ms", "p99_ms", "max_ms", "e2e_p50_ms", "e2e_p99_ms"]))
    path = write_json(args.output, {"config": vars(args), "results": rows})
    print(f"wrote {path}")
    return 0 if all(r["ok"] == r["requests"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
