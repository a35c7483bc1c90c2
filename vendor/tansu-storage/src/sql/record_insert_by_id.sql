-- meshline patch (see MESHLINE.md): a record of a partition whose id is known, with its
-- headers in its row.
insert into record
(topition, offset_id, attributes, producer_id, producer_epoch, timestamp, k, v, h)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9);
