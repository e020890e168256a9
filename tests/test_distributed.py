"""Data-parallel training under torchrun (training/engine/distributed.py), on CPU with gloo.

End to end: `torchrun --nproc_per_node 2 munit-rt train ...` for 3 iterations of each family finishes, writes
one set of checkpoints and one stats log, and with MUNIT_RT_RANK_DIGEST=1 each rank reports the sha256 of its
weights: the ranks' weights are bit-identical (and equal the checkpoint) although their local losses differ
(different data shards and noise). In-process and two-process (torch.multiprocessing) tests pin down the
sharding, the gradient mean, the broadcasts and the error and stop hand-over.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from munit_rt.training.engine import distributed
from munit_rt.training.engine.batches import EpochBatchSampler

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"
LAUNCHER = "from munit_rt.cli import main\nmain()\n"
# A user's own process group around several trainings (train() joins a group that exists, and leaves it open)
GROUP_LAUNCHER = """
import json, sys
import torch.distributed
from munit_rt.cli import cli
torch.distributed.init_process_group("gloo")
for args in json.loads(sys.argv[1]):
    cli.main(args, prog_name="munit-rt", standalone_mode=False)
assert torch.distributed.is_initialized()
torch.distributed.destroy_process_group()
"""


def params_of(module: torch.nn.Module) -> SimpleNamespace:
    """What average_gradients reads of an optimizer (a real one would import torch._dynamo: seconds)."""
    return SimpleNamespace(param_groups=[{"params": list(module.parameters())}])


# -- sharding ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_split_each_step_of_the_single_process_order(world):
    size, batch = 23, 2
    single = EpochBatchSampler(size, batch * world, seed=5, name="trainA")
    ranks = [EpochBatchSampler(size, batch, seed=5, name="trainA", rank=r, world_size=world) for r in range(world)]
    assert all(len(s) == size // (batch * world) == len(single) for s in ranks)
    for epoch, skip in ((0, 0), (3, 1)):
        for s in (single, *ranks):
            s.set_position(epoch, skip)
        shards = [list(s) for s in ranks]
        for step, whole in enumerate(single):  # step k: the ranks' batches, in rank order, are the whole batch
            assert sum((shard[step] for shard in shards), []) == whole
        seen = [i for shard in shards for b in shard for i, _ in b]
        assert len(seen) == len(set(seen)) and all(e == epoch for shard in shards for b in shard for _, e in b)
    one = EpochBatchSampler(size, batch, seed=5, name="trainA")  # world 1: the order it always had
    order = list(range(size))
    import random

    random.Random("5/trainA/shuffle/0").shuffle(order)
    assert [i for b in one for i, _ in b] == order[: size // batch * batch]


def test_single_process_context_changes_nothing():
    dist = distributed.Distributed()
    assert not dist.enabled and dist.is_main and dist.rank_seed(7) == 7
    net = torch.nn.Linear(3, 2)
    optimizer = params_of(net)
    net(torch.ones(1, 3)).sum().backward()
    before = [p.grad.clone() for p in net.parameters()]
    dist.average_gradients(optimizer)
    dist.broadcast_module(net)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, net.parameters()))
    assert dist.reduce_step({"loss": 1.5}, torch.device("cpu")) == ({"loss": 1.5}, False)
    assert dist.gather_to_main(1) is None and dist.decide_on_main(lambda: 3) == 3
    with dist.stop_on_signals():
        pass


def test_seeds_positions_and_environment(monkeypatch):
    seeds = [distributed.Distributed(rank=r, world_size=4).rank_seed(7) for r in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4 and seeds == [distributed.Distributed(rank=r, world_size=4)
                                                                 .rank_seed(7) for r in range(4)]
    assert distributed.Distributed(rank=0, world_size=2).rank_seed(7, salt=3) != 7
    assert distributed.rescale_position(5, 2, 2) == 5 and distributed.rescale_position(5, 2, 4) == 2
    assert distributed.rescale_position(3, 1, 2) == 1 and distributed.rescale_position(3, 2, 1) == 6
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.env_world() == (0, 1, 0)
    dist, device = distributed.setup(torch.device("cpu"))
    assert not dist.enabled and device == torch.device("cpu") and not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(distributed.TrainingError, match="RANK 2 is not in 0..WORLD_SIZE-1"):
        distributed.env_world()


def test_state_digest_is_bit_exact():
    torch.manual_seed(0)
    a, b = torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3)
    digest = distributed.state_digest({"a": a.state_dict(), "b": b.state_dict()})
    assert digest == distributed.state_digest({"b": dict(b.state_dict()), "a": {k: v.clone() for k, v in
                                                                               a.state_dict().items()}})
    with torch.no_grad():
        a.weight[0, 0, 0, 0] = torch.nextafter(a.weight[0, 0, 0, 0], torch.tensor(1.0))
    assert distributed.state_digest({"a": a.state_dict(), "b": b.state_dict()}) != digest


# -- the collectives, two processes -------------------------------------------------------------------------------
def _collectives_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    dist = distributed.Distributed(rank=rank, world_size=2)
    result = {}
    torch.manual_seed(rank)  # different weights per rank, until the broadcast
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    net[1].running_mean.fill_(float(rank + 1))
    dist.broadcast_module(net)
    result["weights"] = distributed.state_digest({"net": net.state_dict()})
    optimizer = params_of(net)
    for p in net.parameters():
        p.grad = torch.full_like(p, float(rank + 1))  # rank 0: 1, rank 1: 2 -> mean 1.5
    net[0].bias.grad = None  # a parameter without a gradient is left alone
    dist.average_gradients(optimizer)
    result["grads"] = sorted({float(v) for p in net.parameters() if p.grad is not None for v in p.grad.flatten()})
    result["bias_grad"] = net[0].bias.grad is None
    result["reduce"] = dist.reduce_step({"loss": float(rank)}, torch.device("cpu"))
    if rank == 1:
        dist._stop.append(15)  # SIGTERM seen by rank 1 only: every rank learns of it
    result["stop"] = dist.reduce_step({"loss": 0.0}, torch.device("cpu"))[1]
    result["gathered"] = dist.gather_to_main({"rank": rank})
    result["decided"] = dist.decide_on_main(lambda: f"from rank {rank}")
    try:
        dist.decide_on_main(lambda: (_ for _ in ()).throw(distributed.TrainingError("rank 0 says no")))
    except distributed.TrainingError as exc:
        result["error"] = str(exc)
    dist.barrier()
    torch.distributed.destroy_process_group()
    Path(out_dir, f"{rank}.json").write_text(json.dumps(result))


def test_collectives_mean_broadcast_gather_and_errors(tmp_path):
    import torch.multiprocessing as mp

    mp.start_processes(_collectives_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                       start_method="fork")  # torch is imported already: forking saves two imports
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["weights"] == r1["weights"]  # parameters and buffers: rank 0's everywhere
    assert r0["grads"] == r1["grads"] == [1.5] and r0["bias_grad"] and r1["bias_grad"]
    assert r0["reduce"] == r1["reduce"] == [{"loss": 0.5}, False]
    assert r0["stop"] is True and r1["stop"] is True
    assert r0["gathered"] == [{"rank": 0}, {"rank": 1}] and r1["gathered"] is None
    assert r0["decided"] == r1["decided"] == "from rank 0"
    assert r0["error"] == r1["error"] == "rank 0 says no"


# -- end to end with torchrun --------------------------------------------------------------------------------------
def write_images(folder: Path, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        paths.append(folder / f"{seed}_{i}.png")
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def munit_case(tmp_path: Path) -> tuple[Path, Path]:
    write_images(tmp_path / "data" / "trainA", 5, seed=1)
    write_images(tmp_path / "data" / "trainB", 4, seed=2)
    return CONFIGS / "tiny.yaml", tmp_path / "data"


def cyclegan_case(tmp_path: Path) -> tuple[Path, Path]:
    write_images(tmp_path / "data" / "trainA", 4, seed=1)
    write_images(tmp_path / "data" / "trainB", 5, seed=2)
    config = yaml.safe_load((CONFIGS / "cyclegan_tiny.yaml").read_text())
    config["pool_size"] = 1  # full after one step: from then on each rank's pool and its draws matter
    (tmp_path / "cyclegan.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "cyclegan.yaml", tmp_path / "data"


def stargan_case(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    paths = write_images(data / "img", 6, seed=3)
    attrs = ["Male", "Young"]
    lines = [str(len(paths)), " ".join(attrs)] + [
        f"img/{p.name} {' 1' if i % 2 else '-1'} {' 1' if i % 3 else '-1'}" for i, p in enumerate(paths)]
    (data / "attrs.txt").write_text("\n".join(lines) + "\n")
    config = yaml.safe_load((CONFIGS / "stargan_tiny.yaml").read_text())
    config.update(attr_path=str(data / "attrs.txt"), selected_attrs=attrs, test_count=1, crop_size=36)
    (tmp_path / "stargan.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "stargan.yaml", data


def pix2pix_case(tmp_path: Path) -> tuple[Path, Path]:
    write_images(tmp_path / "data" / "train", 4, seed=4)  # A|B pairs side by side: any image splits in two
    return CONFIGS / "pix2pix_tiny.yaml", tmp_path / "data"


CASES = {  # family: (case, checkpoint name, generator keys, discriminator keys)
    "munit": (munit_case, "gen_00000003.pt", ("a", "b"), ("a", "b")),
    "cyclegan": (cyclegan_case, "cyclegan_00000003.pt", ("G_A", "G_B"), ("D_A", "D_B")),
    "stargan": (stargan_case, "stargan_00000003.pt", ("G",), ("D",)),
    "pix2pix": (pix2pix_case, "pix2pix_00000003.pt", ("G",), ("D",)),
}
UPSTREAM_FILES = {"pix2pix": ["latest_net_D.pth", "latest_net_G.pth"]}  # written beside each snapshot


def torchrun(tmp_path: Path, script: str, args: list[str]) -> subprocess.CompletedProcess:
    launcher = tmp_path / "launch.py"
    launcher.write_text(script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "MUNIT_RT_RANK_DIGEST": "1", "OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(launcher),
               *args]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def train_args(family: str, tmp_path: Path) -> list[str]:
    root = tmp_path / family
    config, data = CASES[family][0](root)
    return ["train", "--config", str(config), "--data", str(data), "--out", str(root / "run"), "--max-iter", "3",
            "--device", "cpu"]


def check_lockstep_run(run: Path, family: str) -> None:
    _, checkpoint, gen_keys, dis_keys = CASES[family]
    # one set of checkpoints, one log (rank 0's): three ticks of the mean over ranks
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        [checkpoint, "dis_00000003.pt", "optimizer.pt", *UPSTREAM_FILES.get(family, [])])
    stats = [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in stats] == [1, 2, 3]

    # identical weights on both ranks, though each rank computed different losses on different data
    ranks = [json.loads((run / "logs" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["generators"] == ranks[1]["generators"]
    assert ranks[0]["discriminators"] == ranks[1]["discriminators"]
    local = [r["local_losses"] for r in ranks]
    assert any(abs(local[0][k] - local[1][k]) > 1e-6 for k in local[0]), local
    for name, value in local[0].items():
        assert stats[-1][name] == pytest.approx((value + local[1][name]) / 2, rel=1e-5, abs=1e-7)

    # ... and they are what rank 0 saved
    gens = torch.load(run / "checkpoints" / checkpoint, weights_only=True)
    diss = torch.load(run / "checkpoints" / "dis_00000003.pt", weights_only=True)
    assert distributed.state_digest({k: gens[k] for k in gen_keys}) == ranks[0]["generators"]
    assert distributed.state_digest({k: diss[k] for k in dis_keys}) == ranks[0]["discriminators"]
    state = torch.load(run / "checkpoints" / "optimizer.pt", weights_only=True)
    assert state["distributed"]["world_size"] == 2 and len(state["distributed"]["ranks"]) == 2


def test_torchrun_munit_train_two_ranks_in_lockstep(tmp_path):
    """`torchrun --nproc_per_node 2 munit-rt train ...`: the command sets up and tears down the gloo group."""
    result = torchrun(tmp_path, LAUNCHER, train_args("munit", tmp_path))
    assert result.stdout.count("Done: iteration 3") == 1  # rank 0 reports, rank 1 does not
    check_lockstep_run(tmp_path / "munit" / "run", "munit")


def test_torchrun_cyclegan_stargan_and_pix2pix_in_a_users_process_group(tmp_path):
    """Three families in one torchrun job whose workers created the process group themselves (pix2pix: BatchNorm
    buffers broadcast after every step); CycleGAN also stopped after 2 iterations and resumed to 3, which must
    give every rank the weights of the straight run (each rank's RNG and image pools come back from the
    snapshot)."""
    families = ("cyclegan", "stargan", "pix2pix")
    runs = [train_args(family, tmp_path) for family in families]
    split = [*runs[0][:6], str(tmp_path / "cyclegan" / "split"), "--device", "cpu"]
    runs += [[*split, "--max-iter", "2"], [*split, "--max-iter", "3", "--resume"]]
    result = torchrun(tmp_path, GROUP_LAUNCHER, [json.dumps(runs)])
    assert result.stdout.count("Done: iteration 3") == 4
    for family in families:
        check_lockstep_run(tmp_path / family / "run", family)

    straight, resumed = tmp_path / "cyclegan" / "run", tmp_path / "cyclegan" / "split"
    for rank in (0, 1):
        a, b = (json.loads((run / "logs" / f"rank{rank}.json").read_text()) for run in (straight, resumed))
        assert (a["generators"], a["discriminators"]) == (b["generators"], b["discriminators"])
        assert a["local_losses"] == pytest.approx(b["local_losses"], abs=1e-6)
    stats = [[json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]
             for run in (straight, resumed)]
    assert len(stats[0]) == len(stats[1]) == 3
    for a, b in zip(*stats):
        assert {k: v for k, v in a.items() if k.startswith("loss")} == pytest.approx(
            {k: v for k, v in b.items() if k.startswith("loss")}, abs=1e-6)
