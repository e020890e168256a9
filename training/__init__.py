"""PyTorch side of munit-rt: the only model definitions, and their training, checkpoints and graph splits.

    families/          one package per model family (config, model, upstream files, graphs, data, trainer), each
                       registering its TrainingFamily (family.py) with the registry (registry.py)
    engine/            the one training driver of every family: loop, snapshots, callbacks, batches, torchrun
    checkpoint.py      generator files of any family (munit-rt and upstream), never unpickling code
    config.py          config dataclasses from YAML or stored dicts; any family's config by its `family` key
    weights.py, data.py, graphs.py, summary.py   what the families share: state dicts, image files, parity
                                                 cases, `info` rows

Imports flow one way: this package uses munit_rt.preprocess and nothing else of the runtime; export uses it.
"""
