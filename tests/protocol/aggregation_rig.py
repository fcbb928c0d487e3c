"""Test rig for secure aggregation: keys, an aggregator on 127.0.0.1, honest parties and dishonest ones.

* :class:`Rig`: the key-holder's Ed25519 key, one Ed25519 key per registered
  party, the party list and a :class:`KeyHolder` with a real 2048-bit Paillier key.
* :func:`serve_aggregator`: the real aggregator app on a free port.
* :func:`forge_submission`: what a dishonest party sends by hand (any party id,
  any key, any values, including zero noise), as a real HTTP request.
* :class:`Relay`: a malicious aggregator in front of the honest one, a real
  FastAPI server whose hooks rewrite what passes through.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI, Request
from fastapi.responses import Response

from secquant.protocol.aggregation import AggregationClient, ClientPolicy, KeyHolder, PartyList, RoundConfig
from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
from secquant.protocol.aggregation.client import build_submission
from secquant.protocol.aggregation.credentials import SUBMISSION_CONTEXT, submission_statement
from secquant.protocol.aggregation.encoding import (
    TAG_SEED_BYTES,
    encode_ciphertexts,
    encrypt_residues,
    encrypt_seed,
    message_tags,
    to_residues,
)
from secquant.protocol.aggregation.messages import FRAME_VERSION, SUBMISSION, SubmissionKind
from secquant.protocol.messages import Frame, encode_frame, sha256_hex
from secquant.protocol.runner import ServerThread
from secquant.signing import sign_bytes

#: The policy of test clients: 2048-bit keys (the smallest secure size; the default floor is 3072).
TEST_POLICY = ClientPolicy(min_key_bits=2048)


@dataclass
class Rig:
    """Keys of one test deployment.

    Attributes:
        kh_key: The key-holder's Ed25519 private key (its public half is pinned everywhere).
        party_keys: Party id -> Ed25519 private key.
        key_holder: The key-holder (2048-bit Paillier key).
        token: The aggregator's bearer token.
    """

    kh_key: Any
    party_keys: dict[str, Any]
    key_holder: KeyHolder
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @classmethod
    def make(cls, party_ids: list[str], key_bits: int = 2048) -> Rig:
        kh_key = ed25519.Ed25519PrivateKey.generate()
        keys = {pid: ed25519.Ed25519PrivateKey.generate() for pid in party_ids}
        parties = PartyList.from_public_keys({pid: k.public_key() for pid, k in keys.items()})
        return cls(kh_key, keys, KeyHolder(kh_key, parties, key_bits))

    @property
    def kh_pub(self) -> Any:
        return self.kh_key.public_key()

    def client(self, url: str, party_id: str, *, key: Any = None, policy: ClientPolicy = TEST_POLICY,
               reveal: bool = True) -> AggregationClient:
        """An honest party (``key`` defaults to its registered key)."""
        return AggregationClient(url, self.token, party_id, signing_key=key or self.party_keys[party_id],
                                 keyholder_key=self.kh_pub, policy=policy, reveal_noise_for_testing=reveal)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def serve_aggregator(rig: Rig, **limits: Any) -> Iterator[str]:
    """The real aggregator on 127.0.0.1; yields its URL."""
    config = AggregatorConfig(keyholder_key=rig.kh_pub, token=rig.token, **limits)
    with ServerThread(create_aggregator_app(config)) as server:
        yield server.url


def submission_body(rid: str, party_id: str, signing_key: Any, data: bytes, tag: bytes, *, kind: str = "update",
                    shares: int = 1, version: int = FRAME_VERSION, **meta: Any) -> bytes:
    """A ``Submission`` frame of raw ``data`` and ``tag`` bytes signed by ``signing_key`` for any ``party_id``."""
    statement = submission_statement(rid, party_id, kind, shares, sha256_hex(data), sha256_hex(tag))
    signature = sign_bytes(statement, signing_key, context=SUBMISSION_CONTEXT).to_json()
    fields = {"round_id": rid, "party_id": party_id, "kind": kind, "shares": shares, "signature": signature, **meta}
    return encode_frame(Frame(SUBMISSION, version, fields, data + tag))


def encrypt_values(values: np.ndarray, config: RoundConfig, public_key: Any) -> tuple[bytes, bytes]:
    """Well-formed (data, tag) ciphertext bytes of integer ``values``, with valid integrity tags."""
    seed = secrets.token_bytes(TAG_SEED_BYTES)
    cts = encrypt_residues(to_residues(np.asarray(values, dtype=np.int64), config), config, public_key,
                           tags=message_tags(seed, config))
    n = int(public_key.n)
    return encode_ciphertexts(cts, n), encode_ciphertexts([encrypt_seed(seed, public_key)], n)


def forge_submission(rig: Rig, url: str, rid: str, party_id: str, signing_key: Any, config: RoundConfig,
                     values: np.ndarray, kind: SubmissionKind = SubmissionKind.UPDATE, shares: int = 1
                     ) -> httpx.Response:
    """What a dishonest party sends: the real submission builder with any id, key and values (e.g. no noise)."""
    body = build_submission(rid, party_id, signing_key, kind, shares, np.asarray(values, dtype=np.int64), config,
                            rig.key_holder.public_key)
    return httpx.post(f"{url}/v1/rounds/{rid}/submissions", content=body,
                      headers={**rig.auth(), "Content-Type": "application/octet-stream"}, timeout=60)


#: ``(method, path, status, body) -> (status, body)``: rewrites an answer on its way back.
ResponseHook = Callable[[str, str, int, bytes], tuple[int, bytes]]


class Relay:
    """A malicious aggregator: a real server on 127.0.0.1 that relays to the honest one and rewrites traffic.

    Args:
        upstream: URL of the honest aggregator.
        on_submission: Sees (and may rewrite) each submission body before it is relayed.
        on_response: Rewrites any answer (e.g. the status JSON or the ``Aggregate`` frame).
    """

    def __init__(self, upstream: str, *, on_submission: Callable[[bytes], bytes] | None = None,
                 on_response: ResponseHook | None = None) -> None:
        self.seen: list[bytes] = []
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def relay(path: str, request: Request) -> Response:
            body = await request.body()
            if path.endswith("/submissions"):
                self.seen.append(body)
                body = on_submission(body) if on_submission else body
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
            async with httpx.AsyncClient(timeout=60) as http:
                r = await http.request(request.method, f"{upstream}/{path}", content=body, headers=headers)
            status, content = r.status_code, r.content
            if on_response:
                status, content = on_response(request.method, path, status, content)
            return Response(content, status_code=status, media_type=r.headers.get("content-type"))

        self.server = ServerThread(app)

    def __enter__(self) -> str:
        return self.server.start().url

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
