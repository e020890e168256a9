"""PyTorch side of munit-rt: the only model definitions, losses, data, trainer and checkpoint I/O."""
