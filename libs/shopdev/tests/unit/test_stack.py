"""Replica counts and ports of the local stack (`make dev REPLICAS=2`, the replicas suite)."""

import pytest

from shopdev.stack import SERVICES, ports_env, replica_ports, replicas_of

ORDER = next(s for s in SERVICES if s.name == "order")
PAYMENT = next(s for s in SERVICES if s.name == "payment-mock")


def test_one_replica_on_the_services_port_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOP_REPLICAS", "SHOP_ORDER_REPLICAS", "SHOP_ORDER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert replicas_of(ORDER) == 1
    assert replica_ports(ORDER) == [8103]


def test_replicas_for_all_and_for_one_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_REPLICAS", "2")
    monkeypatch.setenv("SHOP_PAYMENT_REPLICAS", "3")
    monkeypatch.setenv("SHOP_ORDER_PORT", "9103")
    assert replica_ports(ORDER) == [9103, 9203]
    assert replica_ports(PAYMENT) == [8105, 8205, 8305]
    assert ports_env({"order": [9103, 9203], "payment-mock": [8105]}) == {
        "SHOP_ORDER_PORTS": "9103,9203",
        "SHOP_PAYMENT_PORTS": "8105",
    }


@pytest.mark.parametrize("value", ["0", "10", "-1"])
def test_a_replica_count_out_of_range_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SHOP_ORDER_REPLICAS", value)
    with pytest.raises(ValueError, match="SHOP_ORDER_REPLICAS"):
        replicas_of(ORDER)
