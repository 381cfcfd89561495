"""The run folder and what it holds: config, split, checkpoints, history, metrics, plots, and the
loggers that receive a run's events."""
