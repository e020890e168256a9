"""One package per model family, each registering its `TrainingFamily` when imported; the registry
(training/registry.py) imports every package here on first use. A family package holds everything about the
family on the torch side: config, model, upstream checkpoint detection and key remap, graph split for export,
preprocessing, manifest keys, the `info` description, the trainer and its data loading."""
