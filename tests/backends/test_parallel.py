"""Whole batches in forked workers give what one process gives; the executor machinery they run on."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import secquant
from secquant.backends.executors import (
    Executor,
    ExecutorError,
    LocalExecutor,
    RayExecutor,
    ServerRecipe,
    executor_from_url,
)
from secquant.backends.executors.base import Window
from secquant.backends.executors.recipe import options_json, recipe_for
from secquant.errors import ArtifactError, ConfigError


def _two_batches(qm, x, batch):
    reps = -(-(batch + 37) // len(x))
    return qm.quantize_input(np.concatenate([x] * reps)[: batch + 37])


def test_bfv_workers_are_bit_exact(digits_mlp):
    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv", mode="throughput")
    batch = em.backend.batch_size()
    xq = _two_batches(qm, digits_mlp.x_test, batch)
    out = em.forward_int(xq, workers=2)
    assert em.last_timings["batches"] == 2.0 and em.last_timings["wall"] > 0
    assert np.array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object))


def test_ckks_workers_stay_within_bound(digits_mlp):
    qm = digits_mlp.qm
    em = secquant.compile(qm, "ckks", mode="throughput")
    xq = _two_batches(qm, digits_mlp.x_test, em.backend.batch_size())
    out = np.asarray(em.forward_int(xq, workers=2), dtype=np.float64)
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    assert em.last_timings["batches"] == 2.0
    assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]


def test_bad_worker_counts_are_refused(digits_mlp):
    em = secquant.compile(digits_mlp.qm, "ckks", mode="throughput")
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ConfigError, match="workers"):
            em.forward_int(digits_mlp.qm.quantize_input(digits_mlp.x_test[:2]), workers=bad)
    assert em.backend.batch_size() == em.parameters()["slots"]
    assert secquant.compile(digits_mlp.qm, "ckks", mode="latency").backend.batch_size() is None


@pytest.mark.slow
def test_throughput_workers_example_small() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "examples" / "throughput_workers.py"), "--schemes", "bfv",
                           "ckks", "--batches", "2", "--epochs", "5"], capture_output=True, text=True, timeout=900,
                          cwd=root, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("bit-exact: True") == 2 and proc.stdout.count("within bound: True") == 2


# ---- executors: LocalExecutor, the Window dispatcher, ServerRecipe, executor_from_url ----------------------


def _exact(a, b) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))


def _children_like_me() -> list[int]:
    """Forked children of this process (same command line as this process)."""
    me = os.getpid()
    with open(f"/proc/{me}/cmdline", "rb") as fh:
        cmd = fh.read()
    kids = []
    for task in os.listdir(f"/proc/{me}/task"):
        with open(f"/proc/{me}/task/{task}/children") as fh:
            kids += [int(p) for p in fh.read().split()]
    out = []
    for pid in kids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read() == cmd:
                    out.append(pid)
        except FileNotFoundError:
            pass
    return out


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_local_map_batches_evaluates_payloads_encrypted_here(digits_mlp):
    """Workers that hold only a server role rebuilt from the recipe's bytes give the oracle's integers."""
    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv", mode="throughput", poly_degree=8192)
    client, _ = em._roles()
    recipe = ServerRecipe.from_bytes(recipe_for(em, client.public_material()).wire)  # no in-process server
    xq = _two_batches(qm, digits_mlp.x_test, em.backend.batch_size())
    chunks = [xq[:8192], xq[8192:]]
    executor = LocalExecutor(2)
    results = list(executor.map_batches(recipe, (client.encrypt(c) for c in chunks)))
    assert [r.index for r in results] == [0, 1] and all(r.attempts == 1 and r.seconds > 0 for r in results)
    assert _exact(np.concatenate([client.decrypt(r.result) for r in results]), qm.forward_int(xq))
    assert executor.last_stats.completions == (1, 1)


def test_a_forked_worker_killed_mid_batch_is_retried(digits_mlp):
    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv", mode="throughput", poly_degree=8192)
    xq = _two_batches(qm, digits_mlp.x_test, em.backend.batch_size())
    em.forward_int(xq[:1])  # keys first
    executor = LocalExecutor(2)
    killed = []

    def kill_one_when_busy() -> None:  # a worker 0.3 CPU-seconds into its batch
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for pid in _children_like_me():
                try:
                    if _cpu_seconds(pid) > 0.3:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        break
                except FileNotFoundError:
                    pass
            time.sleep(0.02)

    thread = threading.Thread(target=kill_one_when_busy)
    thread.start()
    out = em.forward_int(xq, executor=executor)
    thread.join()
    stats = executor.last_stats
    assert killed and stats.retries >= 1 and stats.submitted == 2 + stats.retries
    assert stats.completions == (1, 1) and em.last_timings["retries"] == float(stats.retries)
    assert _exact(out, qm.forward_int(xq))


def test_local_streams_in_order_with_bounded_in_flight(digits_mlp):
    qm = digits_mlp.qm
    em = secquant.compile(qm, "plain")
    client, _ = em._roles()
    xs = qm.quantize_input(digits_mlp.x_test[:12])
    produced, results, outstanding = [], [], []

    def payloads():
        for i in range(len(xs)):
            produced.append(i)
            yield client.encrypt(xs[i:i + 1])

    executor = LocalExecutor(2, in_flight=3)
    recipe = ServerRecipe.from_bytes(recipe_for(em, client.public_material()).wire)
    for ev in executor.map_batches(recipe, payloads()):
        outstanding.append(len(produced) - len(results))
        results.append(client.decrypt(ev.result))
    assert max(outstanding) <= 3 and executor.last_stats.max_outstanding <= 3
    assert _exact(np.concatenate(results), qm.forward_int(xs))
    out = em.forward_int(xs, executor=LocalExecutor(2))  # latency-style: one input per batch
    assert em.last_timings["batches"] == 12.0 and _exact(out, qm.forward_int(xs))


class _Scripted(Window):
    """A Window whose outcomes are scripted: ``script[(index, attempt)]`` is a result or an exception."""

    def __init__(self, script, limit=2, max_retries=1, extra=(), extra_at=2):
        super().__init__(limit, max_retries)
        self.script, self.queue, self.extra, self.extra_at, self.waits = script, [], list(extra), extra_at, 0

    def submit(self, index, item, attempt):
        self.queue.append((index, self.script.get((index, attempt), f"r{index}")))

    def wait(self):
        self.waits += 1
        out = [self.queue.pop()]  # newest first: results come back out of order
        if self.waits == self.extra_at:
            out += self.extra
        return out

    def retryable(self, exc):
        return isinstance(exc, ConnectionError)


def test_window_orders_retries_and_refuses_duplicates_and_lost_work():
    w = _Scripted({(1, 1): ConnectionError("worker died")})
    assert list(w.stream("abcd")) == ["r0", "r1", "r2", "r3"]
    assert w.stats.retries == 1 and w.stats.submitted == 5 and w.stats.completions == (1, 1, 1, 1)
    assert w.stats.max_outstanding <= 2
    with pytest.raises(ExecutorError, match="failed on all 2 attempts"):
        list(_Scripted({(0, 1): ConnectionError("x"), (0, 2): ConnectionError("y")}).stream("ab"))
    with pytest.raises(KeyError, match="bad batch"):  # not retryable: the batch itself is bad
        list(_Scripted({(0, 1): KeyError("bad batch")}).stream("ab"))
    with pytest.raises(ExecutorError, match="not outstanding"):  # planted duplicate of batch 0
        list(_Scripted({}, extra=[(1, "again")]).stream("abc"))  # batch 1 came back in the first wait


def test_recipe_travels_as_a_checked_artifact_and_refuses_what_cannot_travel(digits_mlp):
    em = secquant.compile(digits_mlp.qm, "bfv", mode="throughput", poly_degree=8192)
    client, _ = em._roles()
    recipe = recipe_for(em, client.public_material())
    back = ServerRecipe.from_bytes(recipe.wire)
    assert back.wire == recipe.wire and back.digest == recipe.digest and back.options["poly_degree"] == 8192
    assert back.options["mode"] == "throughput" and back.public_material == client.public_material()
    tampered = bytearray(recipe.wire)
    tampered[len(tampered) // 2] ^= 1
    with pytest.raises(ArtifactError):
        ServerRecipe.from_bytes(bytes(tampered))
    other = ServerRecipe(back.scheme, back.model, dict(back.options, poly_degree=None), back.public_material,
                         back.spec_digest)
    with pytest.raises(ConfigError, match="another client spec"):
        other.build()
    from secquant.backends.paillier.options import PaillierOptions
    from tests.backends.paillier_known_keys import known_key

    assert options_json(em.backend.options) == back.options
    with pytest.raises(ConfigError, match=r"private_key .*cannot be sent to remote workers"):
        options_json(PaillierOptions(private_key=known_key()))  # a secret never travels as an option


def test_executor_from_url_forms_and_refusals():
    fork = executor_from_url("fork:3")
    assert isinstance(fork, LocalExecutor) and fork.workers == 3 and isinstance(fork, Executor)
    assert executor_from_url("fork").workers == (os.cpu_count() or 1)
    remote = executor_from_url("ray://head.example:10001?workers=4&in_flight=6")
    assert isinstance(remote, RayExecutor) and remote.address == "ray://head.example:10001"
    assert remote.workers == 4 and remote.in_flight == 6 and isinstance(remote, Executor)
    assert executor_from_url("ray://head.example").address == "ray://head.example:10001"
    assert executor_from_url("local").address == "local" and executor_from_url("ray:auto").address == "auto"
    for bad in ("fork:0", "fork:x", "ray://", "ray://h:1/path", "spark://h", "ray://h?foo=1", "local?workers=0", ""):
        with pytest.raises(ConfigError):
            executor_from_url(bad)
    for recipes in (0, -1, 1.5, True, "4"):  # roles each Ray actor keeps (checked before any connection)
        with pytest.raises(ConfigError, match="recipes"):
            RayExecutor("local", recipes=recipes)
    assert RayExecutor("local", recipes=2).recipes == 2


def test_forward_int_refuses_two_ways_to_parallelize_and_foreign_executors(digits_mlp):
    em = secquant.compile(digits_mlp.qm, "plain")
    xq = digits_mlp.qm.quantize_input(digits_mlp.x_test[:4])
    with pytest.raises(ConfigError, match="not both"):
        em.forward_int(xq, workers=2, executor=LocalExecutor(2))
    with pytest.raises(ConfigError, match="must be an Executor"):
        em.forward_int(xq, executor="fork:2")
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError):
            LocalExecutor(bad)
