"""Generators: silhouette pool, OVD composites, DYCE scenes, and what they share."""
