"""Scoring: the model protocol, metrics, the evaluator, leaderboards and paper studies."""
