"""The one training engine of every family (docs: each module's docstring).

    driver.py       train(): config, device, data and run-folder checks, then the loop, read top to bottom
    trainer.py      FamilyTrainer, the base of every family's trainer (networks, one step, sample grids)
    snapshots.py    one save/load pair: dis_X.pt, optimizer.pt, then the generator file
    callbacks.py    UI hooks (on_start / on_step / on_end) and the tqdm progress bar
    logs.py         stats.jsonl and TensorBoard
    batches.py      the batch streams (paired and cycling loaders) and the epoch sampler
    distributed.py  torchrun: gradient averaging, broadcasts, coordinated stops
"""
