-- meshline patch (see MESHLINE.md): the headers of a record, or of a range of records, by
-- index: without it every header lookup scanned the whole header table.
create index if not exists header_topition_offset on header (topition, offset_id);
