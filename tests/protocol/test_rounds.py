"""The aggregator's round state machine, without a network: known answers for every transition.

Oracles: the top-up split (``missing // k`` shares each, one more for the first
``missing % k`` contributors in sorted order), the running sum as a product of
ciphertexts mod n² computed by hand, and the errors each wrong message must get.
Deterministic.
"""

from __future__ import annotations

import pytest

from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.aggregation.messages import RoundState, SubmissionKind
from secquant.protocol.aggregation.rounds import Round
from secquant.protocol.errors import MessageError, RoundStateError

N = 1009  # a toy modulus: the state machine only multiplies mod N**2


def _round(n_clients: int = 5, policy: str = "top_up", shares: int | None = None) -> Round:
    cfg = RoundConfig(n_clients=n_clients, dim=2, key_bits=512, allow_insecure_key_bits=True,
                      dropout_policy=policy, min_noise_shares=shares, min_parties=1)
    return Round(rid="r", config=cfg, n=N, public_key="", expires=float("inf"))


def test_every_planned_client_makes_it_ready_and_the_sum_is_the_product() -> None:
    rnd = _round(n_clients=3)
    for i, cid in enumerate(("c", "a", "b")):
        assert rnd.state is RoundState.COLLECTING
        rnd.add_update(cid, [2 + i, 5 + i])
    assert rnd.state is RoundState.READY and rnd.noise_shares == 3
    assert rnd.acc == [2 * 3 * 4 % N**2, 5 * 6 * 7 % N**2]
    status = rnd.status()
    assert status.state == "ready" and status.contributors == ["c", "a", "b"]
    with pytest.raises(RoundStateError, match="only while collecting"):
        rnd.add_update("d", [1, 1])


@pytest.mark.parametrize(("arrived", "expected"), [
    (("e", "b", "d"), {"b": 1, "d": 1}),  # 2 missing shares over 3 survivors: the first two (sorted) add one
    (("c", "a"), {"a": 2, "c": 1}),  # 3 missing over 2: 2 and 1
])
def test_dropouts_get_top_up_assignments_in_sorted_order(arrived: tuple[str, ...], expected: dict[str, int]) -> None:
    rnd = _round(n_clients=5)
    for cid in arrived:
        rnd.add_update(cid, [1, 1])
    rnd.close()
    assert rnd.state is RoundState.TOPUP and rnd.assignments == expected
    with pytest.raises(RoundStateError, match="no top-up is expected from 'zz'"):
        rnd.add_topup("zz", 1, [1, 1])
    first = sorted(expected)[0]
    with pytest.raises(MessageError, match=f"assigned {expected[first]} shares, sent 9"):
        rnd.add_topup(first, 9, [1, 1])
    with pytest.raises(RoundStateError, match="not ready"):
        rnd.aggregate_frame()
    for cid, shares in expected.items():
        rnd.add_topup(cid, shares, [3, 3])
    assert rnd.state is RoundState.READY and rnd.noise_shares == 5
    assert rnd.aggregate_frame()[:4] == b"SQNT"


def test_refuse_policy_and_incomplete_top_up_are_refused() -> None:
    rnd = _round(n_clients=4, policy="refuse")
    rnd.add_update("a", [1, 1])
    rnd.close()
    assert rnd.state is RoundState.REFUSED and "policy is refuse" in rnd.reason
    rnd = _round(n_clients=4)
    rnd.add_update("a", [1, 1])
    rnd.close()
    rnd.close()  # the top-up phase ends without the noise
    assert rnd.state is RoundState.REFUSED and "top-up incomplete" in rnd.reason
    with pytest.raises(RoundStateError, match="refused, not ready: top-up incomplete"):
        rnd.aggregate_frame()
    empty = _round(n_clients=2)
    empty.close()
    assert empty.state is RoundState.REFUSED and empty.reason == "no client contributed"


def test_enough_shares_at_close_need_no_top_up() -> None:
    rnd = _round(n_clients=4, shares=2)  # two dropouts cost nothing
    rnd.add_update("a", [1, 1])
    rnd.add_update("b", [1, 1])
    rnd.close()
    assert rnd.state is RoundState.READY and rnd.assignments == {}
    twice = _round()
    twice.add_update("a", [1, 1])
    with pytest.raises(RoundStateError, match="already submitted"):
        twice.add_update("a", [1, 1])
    assert [k.value for k in SubmissionKind] == ["update", "topup"]
