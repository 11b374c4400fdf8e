"""OVD-style composites: base and occluder sources, compositing, harmonisation."""
