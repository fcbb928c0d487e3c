"""The browser demo without a browser: start ``secquant demo --web``, classify test images as the page does.

Starts the demo (inference server + client app, two processes on 127.0.0.1),
sends shipped test images to the client app's JSON API exactly as the page
does (``POST /api/run``, then polling ``GET /api/jobs/{id}``), prints what each
side saw, checks the size the page would show against the bytes the relay
forwarded (``GET /api/wire``), then stops the demo with SIGINT and checks that
its run directory (key files included) is gone.

    python examples/web_demo.py --data digits --scheme bfv --runs 3
    python examples/web_demo.py --data mnist --scheme ckks --seconds 600   # then open the printed URL
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx


def start_demo(args: argparse.Namespace) -> tuple[subprocess.Popen[str], list[str], str]:
    """Start ``secquant demo --web`` and wait for the URL it prints."""
    cmd = [sys.executable, "-m", "secquant", "demo", "--web", "--port", str(args.port), "--data", args.data,
           "--scheme", args.scheme, *(["--epochs", str(args.epochs)] if args.epochs else []),
           *(["--models", args.models] if args.models else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.rstrip("\n"))
            print("  |", line.rstrip("\n"), flush=True)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        for line in lines:
            if "secquant demo: open " in line:
                return proc, lines, line.split("open ", 1)[1].split(" ", 1)[0]
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("secquant demo --web did not print its URL")


def run_job(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """What the page does on Run: post, then poll the job until it is done or failed."""
    answer = httpx.post(f"{url}api/run", json=body)
    if answer.status_code != 202:
        raise SystemExit(f"refused: {answer.json()}")
    job_id, last = answer.json()["job"], ""
    while True:
        job = httpx.get(f"{url}api/jobs/{job_id}").json()
        if job["stage"] != last and job["state"] == "running":
            last = job["stage"]
            print(f"    ... {last}")
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)


def report(url: str, job: dict[str, Any]) -> bool:
    """Print what each side saw; True if the result agrees with qm.forward_int and the bytes add up."""
    if job["state"] == "failed":
        print(f"  FAILED: {job['error']['error']}: {job['error']['detail']}")
        return False
    r, wire = job["result"], httpx.get(f"{url}api/wire", params={"job": job["id"]}).json()["records"]
    sent = sum(w["request_bytes"] for w in wire if w["method"] == "POST" and w["path"].endswith("/evaluate"))
    view, client = r["server_view"], r["client"]
    print(f"  test image #{r['source']['index']} (label {r['source']['label']}): prediction {r['prediction']}; "
          f"{client['agreement']['label']} vs qm.forward_int")
    print(f"    client: integers in [{client['input_int']['min']}, {client['input_int']['max']}], "
          f"encrypt {client['seconds']['encrypt']:.3f} s, decrypt {client['seconds']['decrypt']:.3f} s")
    print(f"    server: keys {view['keys_bytes']:,} B, ciphertext {view['ciphertext_bytes']:,} B in "
          f"{view['requests']} request(s) (wire: {sent:,} B), evaluated in {view['server_seconds']:.3f} s, "
          f"result {view['result_bytes']:,} B")
    return bool(client["agreement"]["ok"]) and sent == view["ciphertext_bytes"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["mnist", "digits"], default="digits")
    parser.add_argument("--scheme", choices=["bfv", "ckks", "paillier"], default="bfv")
    parser.add_argument("--runs", type=int, default=2, help="test images to classify")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's)")
    parser.add_argument("--models", default=None, help="model cache directory (secquant demo --models)")
    parser.add_argument("--seconds", type=float, default=0.0, help="keep the demo up this long afterwards")
    parser.add_argument("--port", type=int, default=0, help="port of the page (0: a free one)")
    args = parser.parse_args()

    proc, lines, url = start_demo(args)
    ok = True
    try:
        gallery = next(m for m in httpx.get(f"{url}api/models").json()["models"] if m["id"] == args.data)["gallery"]
        for item in gallery[: args.runs]:
            print(f"classifying test image #{item['index']} under {args.scheme} ...")
            ok &= report(url, run_job(url, {"model": args.data, "scheme": args.scheme,
                                            "input": {"kind": "test", "index": item["index"]}}))
        if args.seconds > 0:
            print(f"the page stays up for {args.seconds:.0f} s: open {url}")
            time.sleep(args.seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    time.sleep(0.5)
    run_dir = next(line for line in lines if "run directory" in line).split("run directory ", 1)[1].split(" ")[0]
    print(f"demo stopped (exit {code}); run directory {'still there' if os.path.exists(run_dir) else 'removed'}")
    return 0 if ok and code == 0 and not os.path.exists(run_dir) else 1


if __name__ == "__main__":
    sys.exit(main())
