"""The lifecycle of DESIGN.md section 1 through the real server."""

from __future__ import annotations

from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.support import STORE, at, at_group, availability, item, level, location


def test_oci_worked_example_gives_atf_4_and_ato_6(inventory, reservations):
    # OCI: on hand 10, futures 2, safety 1, reserved 5 -> ATF 4, ATO 6.
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("wh-1")]))
    inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-1", 10, 1, futures=(2,))]))
    reservations.CreateReservation(
        res.CreateReservationRequest(items=[item("sku-1", at("wh-1"), 5)])
    )

    record = availability(inventory, ["sku-1"], ["wh-1"])[("wh-1", "sku-1")]

    assert (record.on_hand, record.reserved, record.safety_stock, record.futures_total) == (
        10,
        5,
        1,
        2,
    )
    assert record.available_to_fulfill == 4
    assert record.available_to_order == 6


def test_seed_order_reserved_at_group_transferred_to_two_stores_and_fulfilled(
    inventory, reservations
):
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[
                location("miami", 25.77, -80.19, STORE),
                location("orlando", 28.54, -81.38, STORE),
                location("newark", 40.73, -74.17),
            ]
        )
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[
                inv.LocationGroup(id="us-web", location_ids=["miami", "orlando", "newark"])
            ]
        )
    )
    inventory.SetStock(
        inv.SetStockRequest(
            levels=[
                level("miami", "jeans", 2),
                level("miami", "sweater-red", 1),
                level("orlando", "sweater-blue", 3),
                level("newark", "jeans", 5),
            ]
        )
    )
    skus = ["jeans", "sweater-red", "sweater-blue"]
    stores = ["miami", "orlando", "newark"]

    created = reservations.CreateReservation(
        res.CreateReservationRequest(
            reservation_id="order-1001",
            items=[
                item("jeans", at_group("us-web"), 1),
                item("sweater-red", at_group("us-web"), 1),
                item("sweater-blue", at_group("us-web"), 1),
            ],
        )
    ).reservation
    assert created.state == res.RESERVATION_STATE_ACTIVE
    view = availability(inventory, skus, stores, ["us-web"])
    assert [view[("us-web", sku)].available_to_order for sku in skus] == [6, 0, 2]
    assert [view[("us-web", sku)].group_reserved for sku in skus] == [1, 1, 1]
    # The only red sweater is in Miami: the group reservation needs it, so Miami cannot sell it.
    assert view[("miami", "sweater-red")].available_to_order == 0
    assert view[("miami", "jeans")].available_to_order == 2  # Newark can cover the group's jeans

    reservations.TransferReservation(
        res.TransferReservationRequest(
            reservation_id="order-1001",
            items=[
                res.TransferItem(
                    sku="jeans", from_place=at_group("us-web"), to_place=at("miami"), quantity=1
                ),
                res.TransferItem(
                    sku="sweater-red",
                    from_place=at_group("us-web"),
                    to_place=at("miami"),
                    quantity=1,
                ),
                res.TransferItem(
                    sku="sweater-blue",
                    from_place=at_group("us-web"),
                    to_place=at("orlando"),
                    quantity=1,
                ),
            ],
        )
    )
    view = availability(inventory, skus, stores, ["us-web"])
    assert view[("miami", "jeans")].reserved == 1
    assert view[("miami", "jeans")].available_to_fulfill == 1
    assert view[("orlando", "sweater-blue")].available_to_fulfill == 2
    assert [view[("us-web", sku)].group_reserved for sku in skus] == [0, 0, 0]
    assert [view[("us-web", sku)].reserved for sku in skus] == [1, 1, 1]
    assert [view[("us-web", sku)].available_to_order for sku in skus] == [6, 0, 2]

    done = reservations.FulfillReservation(
        res.FulfillReservationRequest(
            reservation_id="order-1001",
            items=[
                res.FulfillItem(sku="jeans", place=at("miami"), quantity=1),
                res.FulfillItem(sku="sweater-red", place=at("miami"), quantity=1),
                res.FulfillItem(sku="sweater-blue", place=at("orlando"), quantity=1),
            ],
        )
    ).reservation
    assert done.state == res.RESERVATION_STATE_CLOSED
    view = availability(inventory, skus, stores, ["us-web"])
    assert (view[("miami", "jeans")].on_hand, view[("miami", "jeans")].reserved) == (1, 0)
    assert (
        view[("miami", "sweater-red")].on_hand,
        view[("miami", "sweater-red")].available_to_order,
    ) == (0, 0)
    assert view[("orlando", "sweater-blue")].on_hand == 2
    assert [view[("us-web", sku)].on_hand for sku in skus] == [6, 0, 2]
    assert [view[("us-web", sku)].available_to_order for sku in skus] == [6, 0, 2]
