-- meshline patch (see MESHLINE.md): at most $4 records of a partition from an offset, by the
-- record table's primary key; the fetch stops once it has the bytes it may return.
select offset_id, attributes, timestamp, k, v, producer_id, producer_epoch, h
from record
where topition = $1
and offset_id >= $2
and offset_id < $3
order by offset_id
limit $4;
