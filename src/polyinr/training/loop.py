"""The training loop: one function for every registered generator and discriminator.

Progress is counted in images (``cur_nimg``). Everything random in a step (the data order, latents, labels,
augmentations) is drawn from generators seeded by ``(seed, cur_nimg, …)``, so a run resumed from a snapshot
continues bit for bit where an uninterrupted run would be, and two processes see the same samples as one
process with the same total batch. The GAN specifics live in the loss (``losses.py``): the loop only walks
its phases. Schedules (resolution stage, EMA, blur) are pure functions of ``cur_nimg`` and of the image counts
at which the stages so far have ended, which snapshots keep: with ``options.stage_plateau``, a stage but the last
ends at the snapshot where its own snapshots' first metric has reached a plateau, and the next starts there.

Each resolution stage starts as the authors' next super-resolution run does: G continues from the previous
stage's EMA generator, with fresh Adam moments and a fresh discriminator, and the blur schedule and EMA ramp-up
count from the stage's first image. With metrics at snapshots, that EMA generator is the one of the previous
stage's best snapshot by the first metric (the authors continue from their best-FID ``best_model.pkl``); without
metrics, or with a first metric that ranks nothing (precision/recall, diversity), it is the stage's last.
"""

from __future__ import annotations

import copy
import math
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyinr.checkpoint import latest_snapshot
from polyinr.data.loading import step_batches
from polyinr.errors import PolyinrError
from polyinr.image_io import from_uint8, image_grid, save_image, to_uint8
from polyinr.interrupt import DeferredSignals, Interrupted
from polyinr.models.registry import create as create_generator
from polyinr.sampling import sample_inputs
from polyinr.training import distributed
from polyinr.training.ema import ema_beta, update_ema
from polyinr.training.options import TrainingOptions
from polyinr.training.plateau import PlateauRule, plateaued
from polyinr.training.rundir import RunLog, claim_run_dir, describe
from polyinr.training.schedule import Stage, build_stages, stage_at
from polyinr.training.setup import (
    MetricGoal,
    Ranking,
    build_discriminator,
    build_loss,
    check_stage_plateau,
    check_stages,
    generator_settings,
    load_class_table,
    open_run_data,
    optimizer_settings,
    snapshot_ranking,
    stage_data,
)
from polyinr.training.snapshot import (
    best_snapshot,
    load_module_state,
    load_snapshot,
    read_training_state,
    record_metrics,
    recorded_metrics,
    save_snapshot,
    set_aside_damaged_snapshots,
    snapshot_name,
)
from polyinr.training.stats import collect as collect_stats
from polyinr.training.stats import report


class TrainingError(PolyinrError):
    """Training stopped: diverged (NaN/inf), or could not save its work."""


@dataclass
class TickReport:
    """What the loop tells its caller after each tick (the CLI draws the progress bar from it)."""

    cur_nimg: int
    total_nimg: int
    stage: Stage
    stats: dict[str, float]
    snapshot: Path | None


def _seed(*keys: int) -> int:
    """A seed from integers (seed, images shown, purpose, …): reproducible and independent of call order."""
    return hash(tuple(keys)) & 0x7FFF_FFFF_FFFF_FFFF


def _rng(*keys: int) -> torch.Generator:
    """A generator seeded by :func:`_seed` of ``keys``."""
    return torch.Generator().manual_seed(_seed(*keys))


def _batch_indices(num_images: int, seed: int, start: int, count: int) -> np.ndarray:
    """Dataset indices of images ``start … start+count−1`` of an endless sequence of shuffled epochs."""
    out = np.empty(count, dtype=np.int64)
    pos = 0
    while pos < count:
        epoch, offset = divmod(start + pos, num_images)
        perm = torch.randperm(num_images, generator=_rng(seed, epoch, 1)).numpy()
        take = min(count - pos, num_images - offset)
        out[pos : pos + take] = perm[offset : offset + take]
        pos += take
    return out


# (metric names, G_ema, training data, run directory, new snapshot, device) → by metric name, {"results": {key:
# value}, "detector": the feature network's name, or "none"}; it also records them in the run directory (the
# metric-<name>.jsonl lines). polyinr.metrics.evaluate_snapshot is the one the commands pass.
SnapshotEvaluator = Callable[[Sequence[str], torch.nn.Module, Any, Path, Path, torch.device], dict[str, dict]]


def training_loop(
    options: TrainingOptions, resume: str = "auto", on_tick: Callable[[TickReport], None] | None = None,
    on_message: Callable[[str], None] | None = None, evaluate: SnapshotEvaluator | None = None,
    on_step: Callable[[int, int], None] | None = None, goal: MetricGoal | None = None,
    max_seconds: float | None = None, plateau: PlateauRule | None = None,
) -> Path:  # fmt: skip
    """Train as ``options`` say; return the run directory. ``resume``: 'auto', 'new' or a run directory.

    ``evaluate`` computes ``options.metrics`` at each snapshot (needed when there are metrics to compute);
    ``goal`` ranks the snapshots by the first metric (``polyinr.metrics.metric_goal``), so that each resolution
    stage starts from the previous stage's best (without it: from its last).
    ``on_tick`` gets each tick's report (statistics, snapshot); ``on_step(cur_nimg, total_nimg)`` is called after
    every step, so a progress display moves even when a tick takes minutes.
    A SIGINT or SIGTERM lets the current step finish, saves a snapshot and raises
    :class:`~polyinr.interrupt.Interrupted` naming it (a second signal, or one in a metric pass, raises at once).
    The run ends early, with a snapshot as at its end, once it has trained ``max_seconds`` (the ticks' time, not
    snapshots and their metrics; counted across resumes) or once its first metric at snapshots has reached a
    ``plateau`` (:func:`~polyinr.training.plateau.plateaued`; needs ``goal``). Running it again with a larger
    budget continues it.
    """
    if options.metrics and evaluate is None:
        raise PolyinrError("metrics at snapshots need an evaluator (polyinr.metrics.evaluate_snapshot)")
    ranking = snapshot_ranking(options.metrics, goal)
    if plateau is not None and ranking is None:
        raise PolyinrError("stopping at a plateau needs a first metric at snapshots that ranks them (FID, KID, IS, "
                           "CAS, EQ-T, EQ-R)")  # fmt: skip
    check_stage_plateau(options, ranking)
    if max_seconds is not None and not max_seconds > 0:
        raise PolyinrError(f"the training time budget must be positive, got {max_seconds} s")
    # Initialize -------------------------------------------------------------------------------------------
    device = distributed.process_device(options.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed.init_from_environment(device)
    rank, world = distributed.rank(), distributed.world_size()
    batch_gpu = options.batch_gpu or options.batch // world
    if batch_gpu < 1 or options.batch % (batch_gpu * world):
        raise PolyinrError(f"the batch size {options.batch} must be a multiple of the per-process batch {batch_gpu} "
                           f"× {world} processes")  # fmt: skip
    rounds = options.batch // (batch_gpu * world)  # micro-batches per process per step
    say = on_message if (on_message is not None and rank == 0) else (lambda _text: None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=options.bf16)
    if (options.bf16 or options.tf32 or options.compile) and device.type != "cuda":
        raise PolyinrError("bf16, TF32 and torch.compile need a CUDA device")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = options.tf32
        torch.backends.cudnn.allow_tf32 = options.tf32
        torch.backends.cudnn.benchmark = True

    # Data -------------------------------------------------------------------------------------------------
    dataset, stages, num_classes = open_run_data(options)
    check_stages(options, dataset, stages)
    total_nimg = stages[-1].end_nimg

    # Run directory: rank 0 claims it (an OS lock for the run's lifetime) and tells the others ------------
    desc = describe(options, dataset.name)
    options_json = options.to_json()
    context = dict(device=device, rank=rank, world=world, batch_gpu=batch_gpu, rounds=rounds, say=say,
                   autocast=autocast, dataset=dataset, stages=stages, num_classes=num_classes,
                   total_nimg=total_nimg, desc=desc, options_json=options_json, on_tick=on_tick, on_step=on_step,
                   evaluate=evaluate, ranking=ranking, max_seconds=max_seconds, plateau=plateau)  # fmt: skip
    if rank != 0:
        return _train(options, *_broadcast_run_dir(None, False), **context)
    with claim_run_dir(resume, Path(options.outdir), desc, options_json) as (run_dir, resuming):
        if resuming:  # a damaged newest snapshot is set aside, and the newest intact one resumed
            for line in set_aside_damaged_snapshots(run_dir, len(stages)):
                say(line)
        _broadcast_run_dir(run_dir, resuming)
        return _train(options, run_dir, resuming, **context)


def _train(
    options: TrainingOptions, run_dir: Path, resuming: bool, *, device: torch.device, rank: int, world: int,
    batch_gpu: int, rounds: int, say: Callable[[str], None], autocast: torch.autocast, dataset, stages: list[Stage],
    num_classes: int, total_nimg: int, desc: str, options_json: dict, on_tick: Callable[[TickReport], None] | None,
    on_step: Callable[[int, int], None] | None,
    evaluate: SnapshotEvaluator | None, ranking: Ranking | None, max_seconds: float | None,
    plateau: PlateauRule | None,
) -> Path:  # fmt: skip
    """The training proper, in a claimed run directory (see :func:`training_loop`)."""
    log = RunLog(run_dir) if rank == 0 else None

    # Networks ---------------------------------------------------------------------------------------------
    class_table = load_class_table(options, num_classes)
    cur_nimg, step, stage = 0, 0, stages[0]
    stage_ends: list[int] = []  # images shown when each stage so far ended (early, at a plateau, or by kimg)
    snapshot = latest_snapshot(run_dir) if resuming else None
    if snapshot is not None:  # the stage the snapshot was trained in (at a stage's end, the next one starts below)
        saved = read_training_state(snapshot, len(stages))
        stage_ends = saved.get("stage_ends", [s.end_nimg for s in stages[: saved["stage"]]])  # absent: by kimg
        stages = build_stages(options.stages(dataset.resolution), stage_ends)
        cur_nimg, stage, total_nimg = saved["cur_nimg"], stages[saved["stage"]], stages[-1].end_nimg
    torch.manual_seed(options.seed)
    G = create_generator(options.model, options.preset,
                         **generator_settings(options, num_classes, stages, class_table, stage))  # fmt: skip
    if class_table is not None:
        G.mapping.set_class_embeddings(class_table)
    G, G_ema = _training_copies(G, device, options.compile)
    data = stage_data(options, dataset, stage)
    D = build_discriminator(options, stage, num_classes, class_table, device, G)
    loss = build_loss(options, G, D, device)
    phases = loss.phases()
    trainable = {
        "G": [p for p in G.parameters() if p.requires_grad],  # those G.trainable_parameters() names
        "D": [p for p in D.parameters() if p.requires_grad],
    }
    adam = optimizer_settings(options)
    optimizers = {net: _adam(trainable[net], adam[net]) for net in "GD"}
    loss.begin_stage(stage.index, stage.start_nimg)

    # Resume -----------------------------------------------------------------------------------------------
    stage_start: dict[str, Any] | None = None  # the snapshot this stage's G started from (None: the first stage)
    train_seconds = 0.0  # the ticks' time so far, without snapshots and their metrics
    history: list[tuple[float, float]] = []  # (kimg, value) of the ranking metric at the snapshots so far
    if snapshot is not None:
        counters = load_snapshot(snapshot, {"G": G, "D": D, "G_ema": G_ema, **loss.state_modules()}, optimizers)
        step, stage_start = counters["step"], counters.get("stage_start")
        train_seconds = counters.get("train_seconds", 0.0)
        history = [(kimg, value) for kimg, value in counters.get("metric_history", [])]
        say(f"resuming {run_dir} from {snapshot.name} ({cur_nimg / 1000:.3f} kimg)")
    distributed.broadcast_module(G)
    distributed.broadcast_module(D)
    distributed.broadcast_module(G_ema)
    if log is not None:
        log.write_options(options_json)
        log.line(f"{'resume' if snapshot else 'start'}: {desc}, {len(dataset)} images, {num_classes} classes, "
                 f"G {sum(p.numel() for p in G.parameters()):,} params, D {sum(p.numel() for p in trainable['D']):,} "
                 f"trainable params, {world} process(es) on {device}")  # fmt: skip
        for line in _parameter_table({"G": G, "D": D}):
            log.line(line)
    grid_seeds = list(range(min(32, max(8, 4 * max(num_classes, 1)))))
    grid_classes = [s % num_classes for s in grid_seeds] if num_classes else None
    grid_z, grid_c = sample_inputs(G, grid_seeds, grid_classes, device)
    if log is not None and not (run_dir / "reals.png").exists():
        _save_reals(data, run_dir / "reals.png", len(grid_seeds), options.seed)
        _save_fakes(G_ema, grid_z, grid_c, stage.resolution, run_dir / f"fakes{snapshot_name(cur_nimg)}.png")
    label_probs = torch.as_tensor(data.label_distribution()) if num_classes else None
    if snapshot is not None and options.metrics:  # stopped before its metrics were recorded: compute them now
        if log is not None and recorded_metrics(snapshot) is None:
            _evaluate(evaluate, options.metrics, G_ema, data, run_dir, snapshot, device, log)
        distributed.barrier()
        history += _ranked_points(snapshot, cur_nimg, ranking)

    def early_end() -> str | None:  # why the run ends before its last image, or None (decided by rank 0)
        reason = _early_end_reason(train_seconds, max_seconds, history, ranking, plateau) if rank == 0 else None
        return reason if _all_agree(reason is not None, device) else None

    def end_stage_at_plateau() -> None:  # a stage but the last ends here when its own snapshots have plateaued
        nonlocal stages, stage, total_nimg
        if options.stage_plateau is None or stage.index == len(stages) - 1 or cur_nimg >= stage.end_nimg:
            return
        own = [(kimg, value) for kimg, value in history if kimg > stage.start_nimg / 1000]  # this stage's snapshots
        if not _all_agree(rank == 0 and plateaued(own, ranking[2], options.stage_plateau), device):  # rank 0's
            return
        stages = build_stages(options.stages(dataset.resolution), [*stage_ends, cur_nimg])
        stage, total_nimg = stages[stage.index], stages[-1].end_nimg
        message = (f"stage {stage.index + 1}/{len(stages)} ends at {cur_nimg / 1000:.3f} kimg: {ranking[1]} has "
                   f"reached a plateau ({options.stage_plateau.describe(ranking[1], ranking[2])})")  # fmt: skip
        if log is not None:
            log.line(message)
        say(message)

    # Train ------------------------------------------------------------------------------------------------
    collect_stats()  # start from empty statistics (a previous run in this process may have left some)
    tick_start_nimg, tick_start_time = cur_nimg, time.time()
    ticks_since_snap = 0
    last_snapshot = snapshot
    share = (rounds, world, batch_gpu, rank)
    batches = _stage_batches(data, options, stage, cur_nimg, share, device)
    data_wait = 0.0  # seconds this tick spent waiting for batches
    # SIGINT / SIGTERM let the step finish, save a snapshot and raise Interrupted; a second one, or one in a
    # metric pass (its snapshot saved), raises at once.
    signals = DeferredSignals()
    signals.install()
    end_stage_at_plateau()  # decided again from the snapshot's metrics, as the run that saved it decided
    ended = early_end() if cur_nimg < total_nimg else None
    if ended is not None:
        say(f"not training on: {ended}")
    try:
        while cur_nimg < total_nimg and ended is None:
            # Stage switch, as the authors' next run starts: G continues from this stage's best (or last) G_ema
            # (on a denser grid, or a grown model: the network grown from it) with fresh Adam moments, a fresh D
            # for the new resolution, and the blur and the EMA ramp-up restarting.
            if cur_nimg >= stage.end_nimg:
                if log is not None:
                    stage_start = _choose_stage_start(run_dir, stage, ranking, last_snapshot, G_ema)
                if ranking is not None:
                    distributed.broadcast_module(G_ema)  # rank 0 may have loaded the best snapshot's
                stage_ends.append(stage.end_nimg)
                stage = stage_at(stages, cur_nimg)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(_seed(options.seed, stage.index, 4))  # the new layers' initial weights
                    grown = G_ema.next_stage(stage.resolution)
                if grown is not None:
                    G, G_ema = _training_copies(grown, device, options.compile)
                    loss.G = G
                    trainable["G"] = [p for p in G.parameters() if p.requires_grad]
                    distributed.broadcast_module(G)
                    distributed.broadcast_module(G_ema)
                else:
                    _start_from_ema(G, G_ema)
                optimizers["G"] = _adam(trainable["G"], adam["G"])
                loss.begin_stage(stage.index, stage.start_nimg)
                data = stage_data(options, dataset, stage)
                batches.close()
                batches = _stage_batches(data, options, stage, cur_nimg, share, device)
                D = build_discriminator(options, stage, num_classes, class_table, device, G)
                loss.D = D  # the loss (and its guidance classifier, if any) carries on
                trainable["D"] = [p for p in D.parameters() if p.requires_grad]
                optimizers["D"] = _adam(trainable["D"], adam["D"])
                distributed.broadcast_module(D)
                message = f"stage {stage.index + 1}/{len(stages)}: {stage.resolution}x{stage.resolution}"
                if log is not None:
                    message += f", G from {_describe_start(stage_start)}"
                    log.line(message)
                    report("Progress/stage_start_kimg", float(stage_start["snapshot"]))
                say(message)

            # One step: this process's share of the global batch.
            wait_start = time.perf_counter()
            images, labels = next(batches)  # [rounds · batch_gpu, 3, R, R] uint8, [rounds · batch_gpu]
            data_wait += time.perf_counter() - wait_start
            real_img = from_uint8(images.to(device, non_blocking=True)).view(rounds, batch_gpu, *images.shape[1:])
            real_c = labels.to(device, non_blocking=True).view(rounds, batch_gpu) if num_classes else None
            for phase_index, phase in enumerate(phases):
                if step % phase.interval:
                    continue
                g = _rng(options.seed, cur_nimg, 2, phase_index)
                gen_z = torch.randn(options.batch, G.z_dim, generator=g).to(device)
                gen_c = (
                    torch.multinomial(label_probs, options.batch, True, generator=g).to(device) if num_classes else None
                )
                params = trainable[phase.network]
                _set_trainable(trainable, phase.network)
                for p in params:
                    p.grad = None
                for r in range(rounds):
                    part = slice((r * world + rank) * batch_gpu, (r * world + rank + 1) * batch_gpu)
                    torch.manual_seed(_seed(options.seed, cur_nimg, 3, phase_index, r * world + rank))  # augmentations
                    with autocast:
                        loss.accumulate_gradients(
                            phase.name, real_img[r], None if real_c is None else real_c[r], gen_z[part],
                            None if gen_c is None else gen_c[part], gain=phase.interval / (rounds * world),
                            cur_nimg=cur_nimg,
                        )  # fmt: skip
                distributed.average_gradients(params)
                if not all(torch.isfinite(p.grad).all() for p in params if p.grad is not None):
                    raise TrainingError(
                        f"training diverged: non-finite gradient in {phase.name} at step {step} "
                        f"({cur_nimg / 1000:.3f} kimg); last good snapshot: {last_snapshot}"
                    )
                optimizers[phase.network].step()
            _set_trainable(trainable, None)

            # EMA and progress.
            stage_nimg = cur_nimg - stage.start_nimg  # the EMA ramp-up restarts with every stage
            update_ema(G_ema, G, ema_beta(options.batch, options.resolved_ema_kimg(), stage_nimg, options.ema_rampup))
            cur_nimg += options.batch
            if on_step is not None and rank == 0:
                on_step(cur_nimg, total_nimg)  # the caller's progress moves with every step, not only at ticks
            step += 1
            loss.end_step(step, options.batch)
            stop = _all_agree(signals.received is not None, device)
            stage_done = cur_nimg >= stage.end_nimg
            out_of_time = max_seconds is not None and _all_agree(
                train_seconds + time.time() - tick_start_time >= max_seconds, device
            )
            if not (cur_nimg >= tick_start_nimg + options.tick_kimg * 1000 or stage_done or stop or out_of_time):
                continue

            # Tick: statistics, sample images, snapshot.
            elapsed = time.time() - tick_start_time
            train_seconds += elapsed
            report("Progress/kimg", cur_nimg / 1000)
            report("Progress/train_seconds", train_seconds)
            report("Timing/images_per_sec", (cur_nimg - tick_start_nimg) / max(elapsed, 1e-9))
            report("Timing/data_wait_frac", min(1.0, data_wait / max(elapsed, 1e-9)))
            if device.type == "cuda":
                report("Resources/peak_gpu_mem_gib", torch.cuda.max_memory_allocated(device) / 2**30)
            stats = collect_stats()
            bad = [k for k, v in stats.items() if not math.isfinite(v)]
            if bad:
                raise TrainingError(f"training diverged: {bad[0]} is {stats[bad[0]]} at step {step} "
                                    f"({cur_nimg / 1000:.3f} kimg); last good snapshot: {last_snapshot}")  # fmt: skip
            ticks_since_snap += 1
            done = cur_nimg >= total_nimg or out_of_time
            new_snapshot = None
            snapped = ticks_since_snap >= options.snap_ticks or stage_done or done or stop
            if snapped:
                if not all(torch.isfinite(p).all() for p in G.parameters()):
                    raise TrainingError(f"training diverged: non-finite weight at step {step}; "
                                        f"last good snapshot: {last_snapshot}")  # fmt: skip
                if rank == 0:
                    counters = {"step": step, "stage": stage.index, "stage_start": stage_start,
                                "options": options_json, "train_seconds": train_seconds,
                                "metric_history": history, "stage_ends": stage_ends}  # fmt: skip
                    modules = {"G": G, "D": D, "G_ema": G_ema, **loss.state_modules()}
                    best = best_snapshot(run_dir, stage.index, *ranking) if ranking is not None else None
                    keep = {best[0].name} if best else set()  # the next stage may start from it
                    new_snapshot = save_snapshot(run_dir, cur_nimg, G_ema, modules, optimizers, counters,
                                                 options.keep_snapshots, protect=keep)  # fmt: skip
                    last_snapshot = new_snapshot
                    if options.metrics and not stop:  # when stopping, the resumed run computes them
                        with signals.raising():
                            _evaluate(evaluate, options.metrics, G_ema, data, run_dir, new_snapshot, device, log)
                        history += _ranked_points(new_snapshot, cur_nimg, ranking)
                distributed.barrier()
                ticks_since_snap = 0
            if log is not None:
                _save_fakes(G_ema, grid_z, grid_c, stage.resolution, run_dir / f"fakes{snapshot_name(cur_nimg)}.png")
                log.stats(cur_nimg, stats)
                log.line(
                    f"kimg {cur_nimg / 1000:.3f} step {step} " + " ".join(f"{k}={v:.4g}" for k, v in stats.items())
                )
            if on_tick is not None and rank == 0:
                on_tick(TickReport(cur_nimg, total_nimg, stage, stats, new_snapshot))
            tick_start_nimg, tick_start_time, data_wait = cur_nimg, time.time(), 0.0
            if stop:
                raise Interrupted(signals.received or signal.SIGTERM)  # on the processes not signalled: SIGTERM
            if snapped:
                end_stage_at_plateau()
                ended = early_end() if cur_nimg < total_nimg else None
                if ended is not None:
                    if log is not None:
                        log.line(f"stopped at {cur_nimg / 1000:.3f} kimg: {ended}")
                    say(f"stopped at {cur_nimg / 1000:.3f} kimg: {ended}")
    except Interrupted as e:
        if last_snapshot is None:
            raise
        raise e.noting(f"newest snapshot: {last_snapshot}") from None
    finally:
        signals.restore()
        batches.close()  # stops the data-loading workers
        if log is not None:
            log.close()
    return run_dir


# ---------------------------------------------------------------------------------------------- helpers


def _evaluate(
    evaluate: SnapshotEvaluator, metrics: Sequence[str], G_ema: torch.nn.Module, data, run_dir: Path,
    snapshot: Path, device: torch.device, log: RunLog,
) -> None:  # fmt: skip
    """Compute ``metrics`` of ``snapshot``'s G_ema, record them beside it (for choosing a stage's best
    snapshot) and in the log, each line naming its detector."""
    records = evaluate(metrics, G_ema, data, run_dir, snapshot, device)
    record_metrics(snapshot, {name: record["results"] for name, record in records.items()})
    for name, record in records.items():
        values = " ".join(f"{k}={v:.4g}" for k, v in record["results"].items())
        log.line(
            f"metric {name}: {values}" + ("" if record["detector"] == "none" else f" (detector {record['detector']})")
        )


def _ranked_points(snapshot: Path, cur_nimg: int, ranking: Ranking | None) -> list[tuple[float, float]]:
    """``[(kimg, value)]`` of the ranking metric recorded at ``snapshot`` (empty when there is none)."""
    if ranking is None:
        return []
    metric, key, _lower = ranking
    value = ((recorded_metrics(snapshot) or {}).get(metric) or {}).get(key)
    return [(cur_nimg / 1000, float(value))] if isinstance(value, (int, float)) else []


def _early_end_reason(
    train_seconds: float, max_seconds: float | None, history: Sequence[tuple[float, float]],
    ranking: Ranking | None, plateau: PlateauRule | None,
) -> str | None:  # fmt: skip
    """Why a run ends before its last image: its time budget is spent, or its first metric has reached a plateau."""
    if max_seconds is not None and train_seconds >= max_seconds:
        return f"its budget of {max_seconds / 60:.3g} min of training is spent ({train_seconds / 60:.3g} min)"
    if plateau is not None and ranking is not None and plateaued(history, ranking[2], plateau):
        return f"{ranking[1]} has reached a plateau ({plateau.describe(ranking[1], ranking[2])})"
    return None


def _choose_stage_start(
    run_dir: Path, stage: Stage, ranking: Ranking | None, last_snapshot: Path | None, G_ema: torch.nn.Module
) -> dict[str, Any]:
    """At the end of ``stage`` (rank 0): the snapshot the next stage's G starts from, its G_ema loaded into
    ``G_ema`` — the stage's best by ``ranking``, else its last (the current G_ema, saved as the stage ended)."""
    best = best_snapshot(run_dir, stage.index, *ranking) if ranking is not None else None
    if best is None:
        return {"snapshot": last_snapshot.name, "metric": None, "key": None, "value": None}
    path, value = best
    load_module_state(path, "G_ema", G_ema)
    return {"snapshot": path.name, "metric": ranking[0], "key": ranking[1], "value": value}


def _describe_start(start: dict[str, Any]) -> str:
    if start["metric"] is None:
        return f"the last G_ema (snapshot {start['snapshot']})"
    return f"the G_ema of snapshot {start['snapshot']}, the stage's best by {start['key']} = {start['value']:.6g}"


def _training_copies(G, device: torch.device, compile_synthesis: bool):
    """``(G, G_ema)`` on ``device``: G in training mode with only its trainable parameters taking gradients,
    G_ema a frozen copy in eval mode."""
    G = G.to(device).train().requires_grad_(False)
    for p in G.trainable_parameters():
        p.requires_grad_(True)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    if compile_synthesis:
        G.synthesis.compile()  # in place: parameter names (and so snapshots) are unchanged
    return G, G_ema


def _adam(params: list[torch.nn.Parameter], settings: dict[str, Any]) -> torch.optim.Adam:
    """Adam with the effective settings of :func:`~polyinr.training.setup.optimizer_settings`."""
    return torch.optim.Adam(params, lr=settings["lr"], betas=tuple(settings["betas"]), eps=settings["eps"])


@torch.no_grad()
def _start_from_ema(G: torch.nn.Module, G_ema: torch.nn.Module) -> None:
    """G's weights and buffers ← G_ema's, in place (the parameters the optimisers hold stay the same objects)."""
    for p, p_ema in zip(G.parameters(), G_ema.parameters(), strict=True):
        p.copy_(p_ema)
    for b, b_ema in zip(G.buffers(), G_ema.buffers(), strict=True):
        b.copy_(b_ema)


def _parameter_table(networks: dict[str, torch.nn.Module]) -> list[str]:
    """One line per top-level submodule: total and trainable parameters (DESIGN rule 15's start-up table)."""
    lines = [f"{'module':<36}{'parameters':>14}{'trainable':>14}"]
    for net_name, net in networks.items():
        for name, child in net.named_children():
            total = sum(p.numel() for p in child.parameters())
            trainable = sum(p.numel() for p in child.parameters() if p.requires_grad)
            lines.append(f"{net_name + '.' + name:<36}{total:>14,}{trainable:>14,}")
    return lines


def _set_trainable(trainable: dict[str, list[torch.nn.Parameter]], network: str | None) -> None:
    """Only ``network``'s trainable parameters take gradients (None: all of them, as built)."""
    for name, params in trainable.items():
        for p in params:
            p.requires_grad_(network is None or name == network)


def _stage_batches(
    data, options: TrainingOptions, stage: Stage, cur_nimg: int, share: tuple[int, int, int, int], device: torch.device
):
    """This process's images and labels of each step from ``cur_nimg`` to the stage's end, loaded by
    ``options.workers`` processes (in pinned memory for a CUDA ``device``): ``share = (rounds, world, batch_gpu,
    rank)`` picks its part of the batch."""
    rounds, world, batch_gpu, rank = share

    def indices_at(nimg: int) -> np.ndarray:  # [rounds, batch_gpu]
        idx = _batch_indices(len(data), options.seed, nimg, options.batch)
        return idx.reshape(rounds, world, batch_gpu)[:, rank]

    return step_batches(data, indices_at, cur_nimg, stage.end_nimg, options.batch, options.workers,
                        pin_memory=device.type == "cuda")  # fmt: skip


def _all_agree(flag: bool, device: torch.device) -> bool:
    """True on every process when any process wants to stop."""
    if distributed.world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    return bool(distributed.all_reduce_sum(t).item() > 0)


def _broadcast_run_dir(run_dir: Path | None, resuming: bool) -> tuple[Path, bool]:
    if distributed.world_size() == 1:
        return run_dir, resuming
    import torch.distributed as dist

    box = [(str(run_dir) if run_dir else None, resuming)]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0][0]), box[0][1]


@torch.no_grad()
def _save_fakes(G_ema, z: torch.Tensor, c: torch.Tensor | None, resolution: int, path: Path) -> None:
    images = to_uint8(G_ema(z, c, grid=G_ema.training_grid(resolution)))
    cols = 8
    save_image(image_grid(list(images), cols, -(-len(images) // cols)), path)


def _save_reals(dataset, path: Path, count: int, seed: int) -> None:
    idx = _batch_indices(len(dataset), seed, 0, min(count, len(dataset)))
    images = [dataset[int(i)][0].permute(1, 2, 0).numpy() for i in idx]
    save_image(image_grid(images, 8, -(-len(images) // 8)), path)
