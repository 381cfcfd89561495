"""The data path: decoding audio, the clips a dataset plugin finds, the decoded-audio caches,
the split, the class-balanced sampler, the collator and the dataset download."""
