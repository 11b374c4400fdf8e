"""On-disk formats and their readers: dataset folders, the silhouette pool, masks, conversion."""
