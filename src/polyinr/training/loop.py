"""The training loop: one function for every registered generator and discriminator.

Progress is counted in images (``cur_nimg``). Everything random in a step (the data order, latents, labels,
augmentations) is drawn from generators seeded by ``(seed, cur_nimg, …)``, so a run resumed from a snapshot
continues bit for bit where an uninterrupted run would be, and two processes see the same samples as one
process with the same total batch. The GAN specifics live in the loss (``losses.py``): the loop only walks
its phases. Schedules (resolution stage, EMA, blur) are pure functions of ``cur_nimg`` and of the image counts
at which the stages so far have ended, which snapshots keep: with ``stage_plateau``, a stage but the last
ends at the snapshot where its own snapshots' first metric has reached a plateau, and the next starts there.

Each resolution stage starts as the authors' next super-resolution run does: G continues from the previous
stage's EMA generator, with fresh Adam moments and a fresh discriminator, and the blur schedule and EMA ramp-up
count from the stage's first image. With metrics at snapshots, that EMA generator is the one of the previous
stage's best snapshot by the first metric (the authors continue from their best-FID ``best_model.pkl``); without
metrics, or with a first metric that ranks nothing (precision/recall, diversity), it is the stage's last.
"""

from __future__ import annotations

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
from polyinr.sampling import sample_inputs
from polyinr.training import distributed
from polyinr.training.ema import ema_beta, update_ema
from polyinr.training.options import TrainingOptions
from polyinr.training.plateau import PlateauRule, plateaued
from polyinr.training.rundir import RunLog, claim_run_dir, describe
from polyinr.training.schedule import Stage, build_stages, stage_at
from polyinr.training.seeds import derived_rng, derived_seed
from polyinr.training.settings import DeviceSettings, RunSettings, TrainingSettings
from polyinr.training.setup import (
    MetricGoal,
    Ranking,
    RunData,
    check_guidance,
    check_stage_data,
    check_stage_plateau,
    check_training_grids,
    load_class_table,
    open_run_data,
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
from polyinr.training.stages import NetworkBuilder, first_stage_networks, next_stage_networks
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


def _batch_indices(num_images: int, seed: int, start: int, count: int) -> np.ndarray:
    """Dataset indices of images ``start … start+count−1`` of an endless sequence of shuffled epochs."""
    out = np.empty(count, dtype=np.int64)
    pos = 0
    while pos < count:
        epoch, offset = divmod(start + pos, num_images)
        perm = torch.randperm(num_images, generator=derived_rng(seed, epoch, 1)).numpy()
        take = min(count - pos, num_images - offset)
        out[pos : pos + take] = perm[offset : offset + take]
        pos += take
    return out


# (metric names, G_ema, training data, run directory, new snapshot, device) → by metric name, {"results": {key:
# value}, "detector": the feature network's name, or "none"}; it also records them in the run directory (the
# metric-<name>.jsonl lines). polyinr.metrics.evaluate_snapshot is the one the commands pass.
SnapshotEvaluator = Callable[[Sequence[str], torch.nn.Module, Any, Path, Path, torch.device], dict[str, dict]]


def training_loop(
    options: TrainingOptions,
    resume: str = "auto",
    on_tick: Callable[[TickReport], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    evaluate: SnapshotEvaluator | None = None,
    on_step: Callable[[int, int], None] | None = None,
    goal: MetricGoal | None = None,
    max_seconds: float | None = None,
    plateau: PlateauRule | None = None,
) -> Path:
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
    settings = options.split()  # from here on, each part of training gets only its own settings
    metrics = settings.run.metrics
    if metrics and evaluate is None:
        raise PolyinrError("metrics at snapshots need an evaluator (polyinr.metrics.evaluate_snapshot)")
    ranking = snapshot_ranking(metrics, goal)
    if plateau is not None and ranking is None:
        raise PolyinrError(
            "stopping at a plateau needs a first metric at snapshots that ranks them (FID, KID, IS, CAS, EQ-T, EQ-R)"
        )
    check_stage_plateau(settings.schedule.stage_plateau, metrics, ranking)
    if max_seconds is not None and not max_seconds > 0:
        raise PolyinrError(f"the training time budget must be positive, got {max_seconds} s")
    process = _start_process(settings.device, settings.run, on_message)

    # Data -------------------------------------------------------------------------------------------------
    run_data = open_run_data(settings.data, settings.schedule)
    check_guidance(settings.loss, run_data.stages)
    check_stage_data(settings.data, run_data.dataset, run_data.stages)
    check_training_grids(settings.generator, run_data.stages, run_data.num_classes)

    # Run directory: rank 0 claims it (an OS lock for the run's lifetime) and tells the others ------------
    record = RunRecord(describe(options, run_data.dataset.name), options.to_json())
    caller = Caller(on_tick, on_step, evaluate)
    stopping = Stopping(ranking, max_seconds, plateau)
    if process.rank != 0:
        return _train(settings, *_broadcast_run_dir(None, False), process, run_data, record, caller, stopping)
    with claim_run_dir(resume, Path(settings.run.outdir), record.desc, record.options_json) as (run_dir, resuming):
        if resuming:  # a damaged newest snapshot is set aside, and the newest intact one resumed
            for line in set_aside_damaged_snapshots(run_dir, len(run_data.stages)):
                process.say(line)
        _broadcast_run_dir(run_dir, resuming)
        return _train(settings, run_dir, resuming, process, run_data, record, caller, stopping)


@dataclass(frozen=True)
class Process:
    """This process's share of the run: its device, rank among ``world`` processes, micro-batch and the number
    of micro-batches per step, the autocast it runs G and D under, and where its messages go."""

    device: torch.device
    rank: int
    world: int
    batch_gpu: int
    rounds: int
    autocast: torch.autocast
    say: Callable[[str], None]


@dataclass(frozen=True)
class RunRecord:
    """How the run is named (its directory's description) and recorded (``training_options.json``)."""

    desc: str
    options_json: dict[str, Any]


@dataclass(frozen=True)
class Caller:
    """What the caller of :func:`training_loop` hears from it, and the evaluator of its metrics."""

    on_tick: Callable[[TickReport], None] | None
    on_step: Callable[[int, int], None] | None
    evaluate: SnapshotEvaluator | None


@dataclass(frozen=True)
class Stopping:
    """When the run ends early: the ranking of its snapshots, its time budget, the plateau of its first metric."""

    ranking: Ranking | None
    max_seconds: float | None
    plateau: PlateauRule | None


def _start_process(device_settings: DeviceSettings, run: RunSettings, on_message: Callable[[str], None] | None):
    """This process's device (set up for the run's speed-ups), rank and share of the batch."""
    device = distributed.process_device(device_settings.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed.init_from_environment(device)
    rank, world = distributed.rank(), distributed.world_size()
    batch_gpu = run.batch_gpu or run.batch // world
    if batch_gpu < 1 or run.batch % (batch_gpu * world):
        raise PolyinrError(
            f"the batch size {run.batch} must be a multiple of the per-process batch {batch_gpu} × {world} processes"
        )
    rounds = run.batch // (batch_gpu * world)  # micro-batches per process per step
    say = on_message if (on_message is not None and rank == 0) else (lambda _text: None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device_settings.bf16)
    if (device_settings.bf16 or device_settings.tf32 or device_settings.compile) and device.type != "cuda":
        raise PolyinrError("bf16, TF32 and torch.compile need a CUDA device")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = device_settings.tf32
        torch.backends.cudnn.allow_tf32 = device_settings.tf32
        torch.backends.cudnn.benchmark = True
    return Process(device, rank, world, batch_gpu, rounds, autocast, say)


def _train(
    settings: TrainingSettings,
    run_dir: Path,
    resuming: bool,
    process: Process,
    run_data: RunData,
    record: RunRecord,
    caller: Caller,
    stopping: Stopping,
) -> Path:
    """The training proper, in a claimed run directory (see :func:`training_loop`)."""
    run, schedule, ema = settings.run, settings.schedule, settings.ema
    device, rank, world = process.device, process.rank, process.world
    batch_gpu, rounds = process.batch_gpu, process.rounds
    say, dataset, num_classes = process.say, run_data.dataset, run_data.num_classes
    ranking, evaluate = stopping.ranking, caller.evaluate
    log = RunLog(run_dir) if rank == 0 else None

    # Networks ---------------------------------------------------------------------------------------------
    class_table = load_class_table(settings.classes, num_classes)
    stages = run_data.stages
    cur_nimg, step, stage, total_nimg = 0, 0, stages[0], stages[-1].end_nimg
    stage_ends: list[int] = []  # images shown when each stage so far ended (early, at a plateau, or by kimg)
    snapshot = latest_snapshot(run_dir) if resuming else None
    if snapshot is not None:  # the stage the snapshot was trained in (at a stage's end, the next one starts below)
        saved = read_training_state(snapshot, len(stages))
        stage_ends = saved.get("stage_ends", [s.end_nimg for s in stages[: saved["stage"]]])  # absent: by kimg
        stages = build_stages(schedule.stages(dataset.resolution), stage_ends)
        cur_nimg, stage, total_nimg = saved["cur_nimg"], stages[saved["stage"]], stages[-1].end_nimg
    builder = NetworkBuilder(
        settings.generator,
        settings.disc,
        settings.loss,
        settings.augment,
        settings.optimizer,
        run.seed,
        device,
        settings.device.compile,
        run_data.stages,
        num_classes,
        class_table,
    )
    nets = first_stage_networks(builder, stage)
    phases = nets.loss.phases()  # the loss carries on through every stage
    data = stage_data(settings.data, dataset, stage)

    # Resume -----------------------------------------------------------------------------------------------
    stage_start: dict[str, Any] | None = None  # the snapshot this stage's G started from (None: the first stage)
    train_seconds = 0.0  # the ticks' time so far, without snapshots and their metrics
    history: list[tuple[float, float]] = []  # (kimg, value) of the ranking metric at the snapshots so far
    if snapshot is not None:
        counters = load_snapshot(snapshot, nets.modules(), nets.optimizers)
        step, stage_start = counters["step"], counters.get("stage_start")
        train_seconds = counters.get("train_seconds", 0.0)
        history = [(kimg, value) for kimg, value in counters.get("metric_history", [])]
        say(f"resuming {run_dir} from {snapshot.name} ({cur_nimg / 1000:.3f} kimg)")
    for module in (nets.G, nets.D, nets.G_ema):
        distributed.broadcast_module(module)
    if log is not None:
        log.write_options(record.options_json)
        log.line(
            f"{'resume' if snapshot else 'start'}: {record.desc}, {len(dataset)} images, {num_classes} classes, "
            f"G {sum(p.numel() for p in nets.G.parameters()):,} params, "
            f"D {sum(p.numel() for p in nets.trainable['D']):,} trainable params, {world} process(es) on "
            f"{device}"
        )
        for line in _parameter_table({"G": nets.G, "D": nets.D}):
            log.line(line)
    grid_seeds = list(range(min(32, max(8, 4 * max(num_classes, 1)))))
    grid_classes = [s % num_classes for s in grid_seeds] if num_classes else None
    grid_z, grid_c = sample_inputs(nets.G, grid_seeds, grid_classes, device)
    if log is not None and not (run_dir / "reals.png").exists():
        _save_reals(data, run_dir / "reals.png", len(grid_seeds), run.seed)
        _save_fakes(nets.G_ema, grid_z, grid_c, stage.resolution, run_dir / f"fakes{snapshot_name(cur_nimg)}.png")
    label_probs = torch.as_tensor(data.label_distribution()) if num_classes else None
    if snapshot is not None and run.metrics:  # stopped before its metrics were recorded: compute them now
        if log is not None and recorded_metrics(snapshot) is None:
            _evaluate(evaluate, run.metrics, nets.G_ema, data, run_dir, snapshot, device, log)
        distributed.barrier()
        history += _ranked_points(snapshot, cur_nimg, ranking)

    def early_end() -> str | None:  # why the run ends before its last image, or None (decided by rank 0)
        reason = _early_end_reason(train_seconds, stopping, history) if rank == 0 else None
        return reason if _all_agree(reason is not None, device) else None

    def end_stage_at_plateau() -> None:  # a stage but the last ends here when its own snapshots have plateaued
        nonlocal stages, stage, total_nimg
        rule = schedule.stage_plateau
        if rule is None or stage.index == len(stages) - 1 or cur_nimg >= stage.end_nimg:
            return
        own = [(kimg, value) for kimg, value in history if kimg > stage.start_nimg / 1000]  # this stage's snapshots
        if not _all_agree(rank == 0 and plateaued(own, ranking[2], rule), device):  # rank 0's
            return
        stages = build_stages(schedule.stages(dataset.resolution), [*stage_ends, cur_nimg])
        stage, total_nimg = stages[stage.index], stages[-1].end_nimg
        message = (
            f"stage {stage.index + 1}/{len(stages)} ends at {cur_nimg / 1000:.3f} kimg: {ranking[1]} has "
            f"reached a plateau ({rule.describe(ranking[1], ranking[2])})"
        )
        if log is not None:
            log.line(message)
        say(message)

    # Train ------------------------------------------------------------------------------------------------
    collect_stats()  # start from empty statistics (a previous run in this process may have left some)
    tick_start_nimg, tick_start_time = cur_nimg, time.time()
    ticks_since_snap = 0
    last_snapshot = snapshot
    batches = _stage_batches(data, stage, cur_nimg, process, run, settings.data.workers)
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
            # Stage switch (training/stages.py): G from this stage's best (or last) G_ema, a fresh D, fresh Adam.
            if cur_nimg >= stage.end_nimg:
                if log is not None:
                    stage_start = _choose_stage_start(run_dir, stage, ranking, last_snapshot, nets.G_ema)
                if ranking is not None:
                    distributed.broadcast_module(nets.G_ema)  # rank 0 may have loaded the best snapshot's
                stage_ends.append(stage.end_nimg)
                stage = stage_at(stages, cur_nimg)
                nets = next_stage_networks(nets, builder, stage)
                data = stage_data(settings.data, dataset, stage)
                batches.close()
                batches = _stage_batches(data, stage, cur_nimg, process, run, settings.data.workers)
                message = f"stage {stage.index + 1}/{len(stages)}: {stage.resolution}x{stage.resolution}"
                if log is not None:
                    message += f", G from {_describe_start(stage_start)}"
                    log.line(message)
                    report("Progress/stage_start_kimg", float(stage_start["snapshot"]))
                say(message)
            G, loss = nets.G, nets.loss

            # One step: this process's share of the global batch.
            wait_start = time.perf_counter()
            images, labels = next(batches)  # [rounds · batch_gpu, 3, R, R] uint8, [rounds · batch_gpu]
            data_wait += time.perf_counter() - wait_start
            real_img = from_uint8(images.to(device, non_blocking=True)).view(rounds, batch_gpu, *images.shape[1:])
            real_c = labels.to(device, non_blocking=True).view(rounds, batch_gpu) if num_classes else None
            for phase_index, phase in enumerate(phases):
                if step % phase.interval:
                    continue
                g = derived_rng(run.seed, cur_nimg, 2, phase_index)
                gen_z = torch.randn(run.batch, G.z_dim, generator=g).to(device)
                gen_c = torch.multinomial(label_probs, run.batch, True, generator=g).to(device) if num_classes else None
                params = nets.trainable[phase.network]
                _set_trainable(nets.trainable, phase.network)
                for p in params:
                    p.grad = None
                for r in range(rounds):
                    part = slice((r * world + rank) * batch_gpu, (r * world + rank + 1) * batch_gpu)
                    augment_seed = derived_seed(run.seed, cur_nimg, 3, phase_index, r * world + rank)
                    torch.manual_seed(augment_seed)  # the augmentations' (and crops') draws
                    with process.autocast:
                        loss.accumulate_gradients(
                            phase.name,
                            real_img[r],
                            None if real_c is None else real_c[r],
                            gen_z[part],
                            None if gen_c is None else gen_c[part],
                            gain=phase.interval / (rounds * world),
                            cur_nimg=cur_nimg,
                        )
                distributed.average_gradients(params)
                if not all(torch.isfinite(p.grad).all() for p in params if p.grad is not None):
                    raise TrainingError(
                        f"training diverged: non-finite gradient in {phase.name} at step {step} "
                        f"({cur_nimg / 1000:.3f} kimg); last good snapshot: {last_snapshot}"
                    )
                nets.optimizers[phase.network].step()
            _set_trainable(nets.trainable, None)

            # EMA and progress.
            stage_nimg = cur_nimg - stage.start_nimg  # the EMA ramp-up restarts with every stage
            update_ema(nets.G_ema, G, ema_beta(run.batch, ema.ema_kimg, stage_nimg, ema.ema_rampup))
            cur_nimg += run.batch
            if caller.on_step is not None and rank == 0:
                caller.on_step(cur_nimg, total_nimg)  # the caller's progress moves with every step, not only at ticks
            step += 1
            loss.end_step(step, run.batch)
            stop = _all_agree(signals.received is not None, device)
            stage_done = cur_nimg >= stage.end_nimg
            out_of_time = stopping.max_seconds is not None and _all_agree(
                train_seconds + time.time() - tick_start_time >= stopping.max_seconds, device
            )
            if not (cur_nimg >= tick_start_nimg + run.tick_kimg * 1000 or stage_done or stop or out_of_time):
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
                raise TrainingError(
                    f"training diverged: {bad[0]} is {stats[bad[0]]} at step {step} "
                    f"({cur_nimg / 1000:.3f} kimg); last good snapshot: {last_snapshot}"
                )
            ticks_since_snap += 1
            done = cur_nimg >= total_nimg or out_of_time
            new_snapshot = None
            snapped = ticks_since_snap >= run.snap_ticks or stage_done or done or stop
            if snapped:
                if not all(torch.isfinite(p).all() for p in G.parameters()):
                    raise TrainingError(
                        f"training diverged: non-finite weight at step {step}; last good snapshot: {last_snapshot}"
                    )
                if rank == 0:
                    counters = {
                        "step": step,
                        "stage": stage.index,
                        "stage_start": stage_start,
                        "options": record.options_json,
                        "train_seconds": train_seconds,
                        "metric_history": history,
                        "stage_ends": stage_ends,
                    }
                    best = best_snapshot(run_dir, stage.index, *ranking) if ranking is not None else None
                    keep = {best[0].name} if best else set()  # the next stage may start from it
                    new_snapshot = save_snapshot(
                        run_dir,
                        cur_nimg,
                        nets.G_ema,
                        nets.modules(),
                        nets.optimizers,
                        counters,
                        run.keep_snapshots,
                        protect=keep,
                    )
                    last_snapshot = new_snapshot
                    if run.metrics and not stop:  # when stopping, the resumed run computes them
                        with signals.raising():
                            _evaluate(evaluate, run.metrics, nets.G_ema, data, run_dir, new_snapshot, device, log)
                        history += _ranked_points(new_snapshot, cur_nimg, ranking)
                distributed.barrier()
                ticks_since_snap = 0
            if log is not None:
                fakes = run_dir / f"fakes{snapshot_name(cur_nimg)}.png"
                _save_fakes(nets.G_ema, grid_z, grid_c, stage.resolution, fakes)
                log.stats(cur_nimg, stats)
                log.line(
                    f"kimg {cur_nimg / 1000:.3f} step {step} " + " ".join(f"{k}={v:.4g}" for k, v in stats.items())
                )
            if caller.on_tick is not None and rank == 0:
                caller.on_tick(TickReport(cur_nimg, total_nimg, stage, stats, new_snapshot))
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
    evaluate: SnapshotEvaluator,
    metrics: Sequence[str],
    G_ema: torch.nn.Module,
    data,
    run_dir: Path,
    snapshot: Path,
    device: torch.device,
    log: RunLog,
) -> None:
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


def _early_end_reason(train_seconds: float, stopping: Stopping, history: Sequence[tuple[float, float]]) -> str | None:
    """Why a run ends before its last image: its time budget is spent, or its first metric has reached a plateau."""
    max_seconds, ranking, plateau = stopping.max_seconds, stopping.ranking, stopping.plateau
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


def _stage_batches(data, stage: Stage, cur_nimg: int, process: Process, run: RunSettings, workers: int):
    """This process's images and labels of each step from ``cur_nimg`` to the stage's end, loaded by ``workers``
    processes (in pinned memory on a CUDA device): the process's part of each batch of the run's order."""

    def indices_at(nimg: int) -> np.ndarray:  # [rounds, batch_gpu]
        idx = _batch_indices(len(data), run.seed, nimg, run.batch)
        return idx.reshape(process.rounds, process.world, process.batch_gpu)[:, process.rank]

    return step_batches(
        data, indices_at, cur_nimg, stage.end_nimg, run.batch, workers, pin_memory=process.device.type == "cuda"
    )


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
