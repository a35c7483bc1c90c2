-- meshline patch (see MESHLINE.md): a header of a record of a partition whose id is known.
insert into header (topition, offset_id, k, v) values ($1, $2, $3, $4);
