"""ovbench: synthetic occlusion benchmarks with exact amodal ground truth."""

__version__ = "0.1.0"
