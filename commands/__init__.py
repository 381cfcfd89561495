"""What the commands do, above the training core: evaluate, predict, cross-validate, report,
export, and the Python API that the command line is a thin layer over."""
