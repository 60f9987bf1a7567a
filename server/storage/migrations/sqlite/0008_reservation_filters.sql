-- ListReservations by external reference, and by the SKU and place of a line, without reading
-- every reservation.
CREATE INDEX reservations_by_external_ref ON reservations (external_ref, id);
CREATE INDEX reservation_lines_by_sku ON reservation_lines (sku, place_kind, place_id);
CREATE INDEX reservation_lines_by_place ON reservation_lines (place_kind, place_id);
