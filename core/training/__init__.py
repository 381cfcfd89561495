"""Training: the stages a batch goes through, the batches of a split, normalization, schedules,
the moving average of the weights, the training state, the epoch loop and the trainer."""
