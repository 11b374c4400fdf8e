"""Vehicle and occluder assets, all in one convention: metres, +Z up, front +X, on z = 0."""
