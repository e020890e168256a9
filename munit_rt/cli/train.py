"""`munit-rt train`: thin wrapper around `training.engine.driver.train`, the one driver of every family (torch is
imported only when it runs)."""
from __future__ import annotations

import click

from munit_rt.cli.common import EXIT_INTERRUPTED, command_line, echo_text, friendly_errors


@click.command("train")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="YAML config; its `family` key (munit, cyclegan, stargan, pix2pix; default munit) picks the "
                   "model, e.g. training/configs/munit_utkface.yaml, cyclegan_utkface.yaml, stargan_utkface.yaml, "
                   "pix2pix_edges2faces.yaml.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False),
              help="MUNIT, CycleGAN: folder with trainA/ trainB/ (testA/ testB/ optional), replacing the "
                   "config's data_root (MUNIT also data_folder_*/data_list_*). StarGAN: the image folder, "
                   "replacing image_dir; a relative attr_path is looked for in it, then beside the config file, "
                   "then in the current folder. pix2pix: folder with train/ (A|B pair images side by side; "
                   "test/ or val/ optional).")
@click.option("-o", "--output", "--out", "out_dir", required=True, type=click.Path(),
              help="Run folder: checkpoints/, images/, logs/, config.yaml.")
@click.option("--max-iter", type=click.IntRange(min=1),
              help="Override the config's max_iter. MUNIT: the run's length (the step LR policy has no end). "
                   "CycleGAN, StarGAN, pix2pix: stop early; past the end of the LR schedule (n_epochs + "
                   "n_epochs_decay epochs; num_iters) is an error: extend the schedule in the config instead.")
@click.option("--resume", is_flag=True, help="Continue from the newest snapshot in OUTPUT/checkpoints.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, help="Override the config's seed.")
@click.option("--direction", help="Override the config's direction key (upstream's --direction, AtoB or BtoA), for "
                                  "families that train one direction (pix2pix); the others refuse it.")
@friendly_errors
def command(config_path, data_dir, out_dir, max_iter, resume, device, seed, direction):
    """Train a MUNIT, CycleGAN, StarGAN or pix2pix model (needs munit-rt[train]).

    Snapshots: MUNIT uses the official names (gen_XXXXXXXX.pt, dis_XXXXXXXX.pt, optimizer.pt), CycleGAN,
    StarGAN and pix2pix cyclegan_/stargan_/pix2pix_XXXXXXXX.pt with dis_XXXXXXXX.pt and optimizer.pt
    (pix2pix also upstream's latest_net_G.pth and latest_net_D.pth). Ctrl-C finishes the iteration, writes a
    snapshot, prints the command that resumes and exits with code 130; --resume continues exactly where the
    newest snapshot stopped.

    \b
    Several GPUs or nodes: start it with torchrun (data-parallel, batch_size per process):
      torchrun --nproc_per_node 4 --no-python munit-rt train --config CFG.yaml --data DIR -o RUN
    """
    from munit_rt.cli.common import require

    require("torch", "train")
    require("yaml", "train")
    from munit_rt.training.engine.callbacks import TqdmProgress
    from munit_rt.training.engine.distributed import env_world
    from munit_rt.training.engine.driver import train

    try:
        result = train(config_path, data_dir, out_dir, max_iter=max_iter, seed=seed, direction=direction,
                       resume=resume, device=device, callbacks=(TqdmProgress(),))
    except KeyboardInterrupt as stop:  # the driver saved a snapshot first: say which, and how to go on
        if env_world()[0] == 0:
            echo_text(interrupted_message(stop), err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    if env_world()[0] == 0:  # under torchrun only rank 0 reports
        echo_text(f"Done: iteration {result.iteration}; snapshots in {result.run_dir / 'checkpoints'}")


def interrupted_message(stop: KeyboardInterrupt) -> str:
    """What an interrupted run left (the driver's TrainingInterrupted), and the exact command that goes on."""
    from munit_rt.training.engine.distributed import env_world

    snapshot = getattr(stop, "snapshot", None)
    torchrun = " (under torchrun, with the same torchrun options)" if env_world()[1] > 1 else ""
    if snapshot is None:
        return (f"Interrupted at iteration {getattr(stop, 'iteration', 0)}: no snapshot saved in this run; to "
                f"start again, run{torchrun}: {command_line()}")
    saved = int(snapshot.stem.rsplit("_", 1)[1])
    return (f"Interrupted at iteration {stop.iteration}: the snapshot of iteration {saved} is saved in "
            f"{snapshot.parent} ({snapshot.name}, dis_{saved:08d}.pt, optimizer.pt); to go on, run{torchrun}: "
            f"{command_line({'resume': True})}")
