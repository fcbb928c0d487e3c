"""Whole throughput batches on a real local Ray cluster (2 worker processes), against the integer oracle.

One module-scoped cluster (``RayExecutor("local", workers=2)``, about 6 s to
start) serves every test; tiny models (the digits MLP, BFV at N=8192, CKKS at
its default 4096 slots), two batches each.  Oracles: ``qm.forward_int`` (BFV bit
for bit, CKKS within ``max_abs_error_int``), the forked-worker run, the
client's own secret-key bytes (never in anything Ray serializes), and a killed
actor process (every batch back exactly once).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import numpy as np
import pytest

import secquant
from secquant.backends.executors import RayExecutor, ServerRecipe
from secquant.backends.executors.recipe import recipe_for
from secquant.errors import ConfigError

ray = pytest.importorskip("ray")
zstandard = pytest.importorskip("zstandard")

BFV = {"mode": "throughput", "poly_degree": 8192}
WINDOW = 64  # bytes of raw secret-key coefficients searched for


@pytest.fixture(scope="module")
def cluster() -> Any:
    executor = RayExecutor("local", workers=2)
    executor.gcs_address()  # starts the cluster
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def bfv_model(digits_mlp: Any) -> Any:
    return secquant.compile(digits_mlp.qm, "bfv", **BFV)


def _batches(tm: Any, em: Any, count: int = 2, extra: int = 37) -> np.ndarray:
    """``count - 1`` full batches and a partial one (``extra`` inputs), from the real test images."""
    total = (count - 1) * em.backend.batch_size() + extra
    return tm.qm.quantize_input(np.concatenate([tm.x_test] * -(-total // len(tm.x_test)))[:total])


def _exact(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))


def secret_key_forms(client: Any) -> list[bytes]:
    """Each secret key as SEAL saves it (zstd: what TenSEAL's serialize embeds) and two windows of its raw
    coefficients (what any uncompressed copy, e.g. a pickled array, would contain)."""
    from secquant.backends.seal.serialize import scratch

    if hasattr(client, "_contexts"):  # BFV: one TenSEAL context (and secret key) per CRT prime
        keys = [ctx.secret_key().data for ctx in client._contexts]
    elif hasattr(client, "_secret_key"):  # CKKS
        keys = [client._secret_key]
    else:
        raise AssertionError(f"cannot find the secret key of {type(client).__name__}; update this test")
    forms = []
    for key in keys:
        saved = scratch().dump(key)
        assert saved[:2] == b"\x5e\xa1" and saved[5] == 2, "expected SEAL's zstd serialization"
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(saved[16:])
        forms += [saved, raw[len(raw) // 2:len(raw) // 2 + WINDOW], raw[-WINDOW:]]
    return forms


def _leaks(blob: bytes, forms: list[bytes]) -> bool:
    return any(form in blob for form in forms)


class _Capture:
    """Every value the driver serializes for Ray (task and actor arguments, ``ray.put``) and every
    class or function it exports, through Ray's own serialization context."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from ray._private import function_manager, serialization

        self.values: list[Any] = []
        self.exports: list[bytes] = []
        serialize = serialization.SerializationContext.serialize
        dumps = function_manager.pickle_dumps

        def spy_serialize(ctx: Any, value: Any) -> Any:
            self.values.append(value)
            return serialize(ctx, value)

        def spy_dumps(obj: Any, *args: Any, **kwargs: Any) -> bytes:
            blob = dumps(obj, *args, **kwargs)
            self.exports.append(blob)
            return blob

        monkeypatch.setattr(serialization.SerializationContext, "serialize", spy_serialize)
        monkeypatch.setattr(function_manager, "pickle_dumps", spy_dumps)


def test_secret_key_never_reaches_ray(cluster: Any, digits_mlp: Any, bfv_model: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    em, qm = bfv_model, digits_mlp.qm
    xq = _batches(digits_mlp, em)
    client, _ = em._roles()
    forms = secret_key_forms(client)
    payloads: list[bytes] = []
    encrypt = client.encrypt
    monkeypatch.setattr(client, "encrypt", lambda x, progress=None: payloads.append(encrypt(x, progress)) or payloads[-1])
    cluster.release()  # a new actor class and new actors: their export and constructor arguments are captured too
    capture = _Capture(monkeypatch)
    out = em.forward_int(xq, executor=cluster)
    assert _exact(out, qm.forward_int(xq))
    recipe = recipe_for(em, client.public_material())
    blobs = [v for v in capture.values if isinstance(v, bytes)]
    digests = [v for v in capture.values if isinstance(v, str)]
    boxes = [v for v in capture.values if isinstance(v, list)]
    assert digests and set(digests) == {recipe_for(em, client.public_material()).digest}
    assert boxes and all(len(b) == 1 and isinstance(b[0], ray.ObjectRef) for b in boxes)  # the recipe, unresolved
    assert all(isinstance(v, (bytes, int, str, list)) and not isinstance(v, bool) for v in capture.values), \
        sorted({type(v).__name__ for v in capture.values})
    big = [b for b in blobs if len(b) > 64]
    assert recipe.wire in big and len(payloads) == 2 and all(p in big for p in payloads)
    assert all(b == recipe.wire or b in payloads for b in big)  # public material, model and ciphertexts only
    assert ServerRecipe.from_bytes(recipe.wire).public_material == client.public_material()
    assert capture.exports and all(len(e) < 100_000 for e in capture.exports)  # the actor class, by reference
    assert not any(_leaks(b, forms) for b in blobs + capture.exports)


def test_the_leak_check_catches_a_planted_leak(digits_mlp: Any, bfv_model: Any) -> None:
    """Planted bug: public material whose first context is serialized with its secret key, as a careless
    client would send it. The check finds it in the recipe's bytes, and a worker refuses to build from it."""
    from secquant.artifact import encode_artifact, read_artifact
    from secquant.backends.bfv.wire import PUBLIC

    client, _ = bfv_model._roles()
    forms = secret_key_forms(client)
    _, meta, arrays = read_artifact(client.public_material(), PUBLIC)
    private = client._contexts[0].serialize(save_public_key=True, save_secret_key=True, save_galois_keys=False,
                                            save_relin_keys=True)
    arrays["context0"] = np.frombuffer(private, dtype=np.uint8)
    leaky = recipe_for(bfv_model, encode_artifact(PUBLIC, 1, meta, arrays))
    assert _leaks(leaky.wire, forms)
    assert not _leaks(recipe_for(bfv_model, client.public_material()).wire, forms)
    with pytest.raises(secquant.errors.KeyMaterialError):
        leaky.build()


def test_bfv_is_bit_exact_against_the_oracle_and_forked_workers(cluster: Any, digits_mlp: Any,
                                                                bfv_model: Any) -> None:
    em, qm = bfv_model, digits_mlp.qm
    xq = _batches(digits_mlp, em)
    out = em.forward_int(xq, executor=cluster)
    stats = cluster.last_stats
    assert em.last_timings["batches"] == 2.0 and em.last_timings["workers"] == 2.0
    assert stats is not None and stats.completions == (1, 1) and stats.retries == 0
    assert _exact(out, qm.forward_int(xq))
    assert _exact(out, em.forward_int(xq, workers=2))


def test_ckks_stays_within_its_bound(cluster: Any, digits_mlp: Any) -> None:
    qm = digits_mlp.qm
    em = secquant.compile(qm, "ckks", mode="throughput")
    xq = _batches(digits_mlp, em)
    out = np.asarray(em.forward_int(xq, executor=cluster), dtype=np.float64)
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    assert out.shape == ref.shape and cluster.last_stats.completions == (1, 1)
    assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_worker_killed_mid_batch_is_retried_and_nothing_is_lost_or_duplicated(
        cluster: Any, digits_mlp: Any, bfv_model: Any) -> None:
    em, qm = bfv_model, digits_mlp.qm
    xq = _batches(digits_mlp, em, count=3)
    em.forward_int(xq[:1], executor=cluster)  # actors for this model exist before the run
    victim = cluster.worker_pids()[0]
    base = _cpu_seconds(victim)
    killed: list[float] = []

    def kill_when_busy() -> None:  # batch 0 goes to actor 0; kill it 0.3 CPU-seconds into that batch
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _cpu_seconds(victim) - base < 0.3:
            time.sleep(0.02)
        os.kill(victim, signal.SIGKILL)
        killed.append(_cpu_seconds(victim) if os.path.exists(f"/proc/{victim}/stat") else -1.0)

    thread = threading.Thread(target=kill_when_busy)
    thread.start()
    out = em.forward_int(xq, executor=cluster)
    thread.join()
    stats = cluster.last_stats
    assert killed and stats is not None
    assert stats.retries >= 1 and stats.submitted == 3 + stats.retries
    assert stats.completions == (1, 1, 1) and len(out) == len(xq)
    assert _exact(out, qm.forward_int(xq))
    assert victim not in cluster.worker_pids()  # the actor came back in a new process


def test_batches_stream_in_order_with_bounded_in_flight(cluster: Any, digits_mlp: Any) -> None:
    """Plain scheme, 12 one-input payloads: never more than in_flight (4) produced and not handed back."""
    qm = digits_mlp.qm
    em = secquant.compile(qm, "plain")
    client, _ = em._roles()
    recipe = recipe_for(em, client.public_material())
    xs = qm.quantize_input(digits_mlp.x_test[:12])
    produced = []

    def payloads() -> Any:
        for i in range(len(xs)):
            produced.append(i)
            yield client.encrypt(xs[i:i + 1])

    outstanding = []
    results = []
    for ev in cluster.map_batches(recipe, payloads()):
        outstanding.append(len(produced) - len(results))
        results.append(client.decrypt(ev.result))
        assert ev.index == len(results) - 1
    assert max(outstanding) <= cluster.in_flight == 4 and cluster.last_stats.max_outstanding <= 4
    assert cluster.gcs_address().startswith("127.")  # the local cluster listens on the loopback address only
    assert _exact(np.concatenate(results), qm.forward_int(xs))


def test_sessions_taking_turns_reuse_the_actors_and_their_roles(cluster: Any, digits_mlp: Any,
                                                                bfv_model: Any) -> None:
    """Two recipes (two clients' public material) in turn: bit-exact, the same actor processes, and each
    role built once per actor; an executor that keeps one role (``recipes=1``) rebuilds on every switch."""
    qm = digits_mlp.qm
    ems = [bfv_model, secquant.compile(qm, "bfv", **BFV)]
    xq = _batches(digits_mlp, bfv_model, count=1, extra=12)
    ems[1].forward_int(xq[:1])  # its own keys
    cluster.release()
    pids = None
    for turn in range(4):
        em = ems[turn % 2]
        assert _exact(em.forward_int(xq, executor=cluster), qm.forward_int(xq))
        pids = pids or cluster.worker_pids()
        assert cluster.worker_pids() == pids  # no actor was restarted or replaced
    assert cluster.builds() == [2, 2]
    cluster.recipes = 1  # planted: actors that keep one role
    cluster.release()
    try:
        for turn in range(3):
            ems[turn % 2].forward_int(xq, executor=cluster)
        assert cluster.builds() == [3, 3]
    finally:
        cluster.recipes = 4
        cluster.release()


def test_a_recipe_that_compiles_another_spec_is_refused_by_the_workers(cluster: Any, digits_mlp: Any, bfv_model: Any) -> None:
    """A worker that compiles another client spec than the client's (other options here) refuses to serve."""
    client, _ = bfv_model._roles()
    good = recipe_for(bfv_model, client.public_material())
    other = secquant.compile(digits_mlp.qm, "bfv", mode="throughput")  # N chosen by the bounds, not 8192
    bad = ServerRecipe(good.scheme, good.model, dict(good.options, poly_degree=None), good.public_material,
                       good.spec_digest)
    assert other.client_spec() != bfv_model.client_spec()
    with pytest.raises(secquant.backends.executors.ExecutorError, match="another client spec"):
        cluster.start(bad)
    with pytest.raises(ConfigError, match=r"workers=N .* or executor="):
        bfv_model.forward_int(_batches(digits_mlp, bfv_model), workers=2, executor=cluster)


@pytest.mark.slow
def test_ray_example_runs_small_on_the_running_cluster(cluster: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cluster.release()  # the example's actors need the CPUs
    proc = subprocess.run([sys.executable, str(root / "examples" / "ray_scale_out.py"), "--address",
                           cluster.gcs_address(), "--batches", "2", "--epochs", "5", "--bfv-degree", "8192"],
                          capture_output=True, text=True, timeout=600, cwd=root, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bit-exact: True" in proc.stdout and "within bound: True" in proc.stdout, proc.stdout
