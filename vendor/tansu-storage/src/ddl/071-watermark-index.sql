-- meshline patch (see MESHLINE.md): a partition's watermarks, read and written by every
-- produce and fetch, by index rather than a scan of every partition's row.
create index if not exists watermark_topition on watermark (topition);
