"""The pipeline that makes the default MLKD-Track model, and the selection of the best student.

``mlkd train pipeline --data SYNTH --enhancer darklighter.pth --out runs/default`` runs, on
``mlkd synth`` output (``SYNTH/day`` and ``SYNTH/night``: twins with the same sequence names):

1. split the sequences by name into train / validation / test (the day twin of a held-out night
   sequence is held out too: same geometry);
2. ``base``: SiamRPN on the day training twins (the daytime tracker);
3. ``teacher``: base + frozen DarkLighter, fine-tuned on the night training sequences;
4. ``ml``: three students from base in the mutual-learning room, distilled from the teacher;
5. ``nokd``: the no-distillation baseline, a student of the same size trained from base on the
   same night pairs with the same schedule, base loss only;
6. selection: the ML student with the best success AUC on the validation split becomes
   MLKD-Track, written as fp16 weights;
7. evaluation on the test split: MLKD-Track, the no-KD student, the teacher, the daytime base
   and the OpenCV peers (CSRT, KCF); table, JSON, success / precision plots, model card.

Each stage is a run folder under ``--out``; re-running the command skips finished stages and
resumes an interrupted one from its last epoch. Stage settings come from a pipeline YAML
(``models/pipeline_cpu.yaml``: sized for a 2-core CPU) that names a training config per stage
plus overrides.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlkd_tracker.errors import InputError
from mlkd_tracker.report import atomic_output, format_table, write_json_atomic, write_text_atomic
from mlkd_training.data.sequence import Dataset
from mlkd_training.room import LossConfig
from mlkd_training.train_config import TrainConfig, build_dataclass, load_train_config, read_yaml, set_dotted

STAGES = ("base", "teacher", "ml", "nokd")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: a training config YAML (bundled name or path) and dotted overrides."""

    config: str
    set: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline trains and how it splits and evaluates (``models/pipeline_*.yaml``)."""

    width: float = 0.5
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    split_seed: int = 0
    base: StageConfig = StageConfig("train_base.yaml")
    teacher: StageConfig = StageConfig("train_teacher.yaml")
    ml: StageConfig = StageConfig("train_ml.yaml")
    common: dict = field(default_factory=dict)  # training overrides applied to every stage first
    peers: tuple[str, ...] = ("csrt", "kcf")
    eval_workers: int = 2

    def __post_init__(self) -> None:
        if not (0 < self.val_fraction and 0 < self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise InputError("pipeline: need val_fraction > 0, test_fraction > 0 and their sum < 1")


def load_pipeline_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """A pipeline YAML, then dotted overrides (``ml.set.optim.epochs=2`` style keys are kept whole)."""
    data = read_yaml(path, "pipeline config")
    for dotted, value in (overrides or {}).items():
        stage, _, rest = dotted.partition(".")
        if stage in ("base", "teacher", "ml") and rest and rest != "config":
            data.setdefault(stage, {}).setdefault("set", {})[rest] = value  # a training key of that stage
        elif stage == "common" and rest:
            data.setdefault("common", {})[rest] = value
        else:
            set_dotted(data, dotted, value)
    return build_dataclass(PipelineConfig, data, str(path))


def _config_path(name: str) -> Path:
    from mlkd_tracker.config import models_dir

    path = Path(name)
    return path if path.is_file() else models_dir() / name


def stage_configs(p: PipelineConfig, out: Path, enhancer: str, init: str | None,
                  data_note: dict[str, str]) -> dict[str, TrainConfig]:
    """The four stages' training configs, chained through the run folders under ``out``."""
    base = load_train_config(_config_path(p.base.config), {**p.common, **p.base.set}, mode="base", init=init,
                             width=None if init else p.width, data=[{"path": data_note["day"]}])
    teacher = load_train_config(_config_path(p.teacher.config), {**p.common, **p.teacher.set}, mode="teacher",
                                init=str(out / "base" / "base.pth"), enhancer=enhancer,
                                data=[{"path": data_note["night"]}])
    ml = load_train_config(_config_path(p.ml.config), {**p.common, **p.ml.set}, mode="ml",
                           init=str(out / "base" / "base.pth"), teacher=str(out / "teacher" / "teacher.pth"),
                           data=[{"path": data_note["night"]}])
    # the no-KD baseline: the students' recipe (pairs, schedule, frozen head outputs), base loss only
    nokd = dataclasses.replace(ml, mode="base", teacher=None)
    return {"base": base, "teacher": teacher, "ml": ml, "nokd": nokd}


# ----------------------------------------------------------------------------- data

def split_names(names: list[str], val_fraction: float, test_fraction: float, seed: int = 0):
    """Deterministic train / val / test split of sequence names (at least one in each)."""
    if len(names) < 3:
        raise InputError(f"the pipeline needs at least 3 sequences to split, got {len(names)}")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    n_val = min(max(1, round(len(names) * val_fraction)), len(names) - 2)
    n_test = min(max(1, round(len(names) * test_fraction)), len(names) - n_val - 1)
    val, test = sorted(order[:n_val]), sorted(order[n_val:n_val + n_test])
    return sorted(order[n_val + n_test:]), val, test


def subset(dataset: Dataset, names: list[str], suffix: str) -> Dataset:
    """The named sequences of ``dataset`` as a new dataset ``<name>-<suffix>``."""
    return Dataset(f"{dataset.name}-{suffix}", [dataset[n] for n in names])


def open_twins(data: str | Path) -> tuple[Dataset, Dataset]:
    """``(day, night)`` datasets of an ``mlkd synth`` folder; names must match."""
    from mlkd_training.pairs import open_dataset_folder

    root = Path(data)
    day, night = open_dataset_folder(root / "day"), open_dataset_folder(root / "night")
    if sorted(s.name for s in day) != sorted(s.name for s in night):
        raise InputError(f"{root}: day/ and night/ must hold the same sequences (mlkd synth writes twins)")
    return day, night


# ----------------------------------------------------------------------------- stages

def stage_finished(out: Path, config: TrainConfig) -> bool:
    """A stage whose run folder holds every epoch's history (its exports are then final).

    A finished stage made with other settings is an error: its models would not be what the
    pipeline config describes.
    """
    from mlkd_training.train_config import RESUMABLE_CHANGES, config_differences

    path = out / "history.json"
    if not path.is_file() or len(json.loads(path.read_text())) < config.optim.epochs:
        return False
    saved = json.loads((out / "config.json").read_text())
    changed = [k for k in config_differences(saved, config.to_dict()) if k not in RESUMABLE_CHANGES]
    if changed:
        raise InputError(f"{out} was trained with other settings ({', '.join(changed)}); "
                         f"use another --out or delete that stage folder")
    return True


def run_stage(name: str, config: TrainConfig, out: Path, datasets: list[Dataset], device: str,
              progress: bool) -> dict[str, Any]:
    """Train (or resume, or skip) one stage; returns its history and timing."""
    from mlkd_training.pairs import FrameCanvases, PairSource
    from mlkd_training.trainer import Trainer, latest_state

    if stage_finished(out, config):
        print(f"[pipeline] {name}: finished earlier, kept ({out})")
        return {"history": json.loads((out / "history.json").read_text()), "skipped": True}
    sources = [PairSource(FrameCanvases(d, config.pairs)) for d in datasets]
    trainer = Trainer(config, out, sources, device=device, progress=progress, label=name)
    if latest_state(out) is not None:
        path = trainer.resume()
        print(f"[pipeline] {name}: resuming from {path}")
    t0 = time.perf_counter()
    history = trainer.fit()
    return {"history": history, "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- evaluation and selection

def evaluate_models(dataset: Dataset, trackers: dict[str, str], results_root: Path, workers: int = 1,
                    device: str = "auto", progress: bool = True):
    """Track ``dataset`` with each ``{name: model file or peer}`` (resumable) and evaluate; best AUC first."""
    from mlkd_training.evaluation.results import evaluate_results
    from mlkd_training.evaluation.runner import TrackerSpec, run_tracker

    for name, spec in trackers.items():
        _forget_stale_results(Path(results_root) / dataset.name / name, spec)
        run_tracker(dataset, TrackerSpec(str(spec), name, device=device), results_root, workers=workers,
                    progress=progress)
    return evaluate_results(dataset, Path(results_root) / dataset.name, list(trackers))


def _forget_stale_results(folder: Path, spec: str) -> None:
    """Results are kept between runs (tracking resumes); drop them if the model file changed since."""
    if not Path(spec).is_file():
        return  # an OpenCV peer
    stamp = folder / "model.sha256"
    digest = hashlib.sha256(Path(spec).read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    shutil.rmtree(folder, ignore_errors=True)
    write_text_atomic(stamp, digest + "\n")


def student_files(paths: list[str]) -> dict[str, str]:
    """Model files by name: files as given, folders expanded to their ``student_*.pth`` exports."""
    out: dict[str, str] = {}
    for item in paths:
        path = Path(item)
        files = sorted(path.glob("student_*.pth")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            raise InputError(f"{path}: no student model files (expected *.pth or a run folder with student_*.pth)")
        out.update({f.stem: str(f) for f in files})
    return out


def write_selected(model_file: str, out: Path, selected_from: dict[str, float], half: bool = True) -> Path:
    """Save the chosen student as MLKD-Track (fp16 by default) with its selection in the meta."""
    from mlkd_tracker.nets.checkpoint import load_network, save_checkpoint

    model, meta = load_network(model_file)
    meta = {**meta, "name": "MLKD-Track", "arch": {"width": model.width, "enhancer": False},
            "selection": {"from": Path(model_file).stem, "val_success_auc": selected_from}}
    return save_checkpoint(model, out, meta, half=half)


def select_best(models: dict[str, str], val: Dataset, results_root: Path, out_file: Path, workers: int = 1,
                device: str = "auto", progress: bool = True) -> tuple[str, list]:
    """Evaluate the students on ``val`` and write the best (success AUC) as ``out_file``."""
    evaluations = evaluate_models(val, models, results_root, workers, device, progress)
    best = evaluations[0].name
    write_selected(models[best], out_file, {ev.name: ev.overall.auc for ev in evaluations})
    return best, evaluations


def results_table(evaluations) -> str:
    return format_table(["tracker", "success AUC", "precision@20", "norm. precision", "FPS"],
                        [[ev.name, ev.overall.auc, ev.overall.precision_20, ev.overall.norm_precision_20,
                          ev.fps if ev.fps is not None else float("nan")] for ev in evaluations], floatfmt=".3f")


# ----------------------------------------------------------------------------- model card

def _stage_rows(configs: dict[str, TrainConfig], runs: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for name in STAGES:
        c, run = configs[name], runs[name]
        history = run["history"]
        steps = sum(h["steps"] for h in history)
        seconds = sum(h["seconds"] for h in history)
        rows.append([name, c.mode, len(history), steps, steps * c.optim.batch_size, seconds / 60,
                     steps * c.optim.batch_size / seconds if seconds else float("nan")])
    return rows


def distillation_check(scores: dict[str, float]) -> str:
    """The model card's verdict on "MLKD-Track AUC > no-KD student AUC", with the likely reason if it fails."""
    ml, nokd, teacher = (scores.get(k) for k in ("MLKD-Track", "no-KD-student", "teacher"))
    if ml is None or nokd is None:
        return "not measured"
    if ml > nokd:
        return f"**holds**: {ml:.3f} vs {nokd:.3f} (+{ml - nokd:.3f} success AUC)."
    if teacher is not None and teacher <= nokd:
        reason = (f"the teacher ({teacher:.3f}) is no better than the no-KD student on this set, so there was "
                  f"nothing to distil: train the teacher longer (or on more night data) first")
    else:
        reason = ("the training budget is too short for the distillation signal to separate the students "
                  "from the no-KD baseline: train longer (more pairs per epoch, more epochs)")
    return f"**does not hold**: {ml:.3f} vs {nokd:.3f}. Likely reason: {reason}."


def synth_provenance(data: str | Path) -> str:
    """How an ``mlkd synth`` folder was generated (from its ``synth.json``), or "" for other data."""
    try:
        info = json.loads((Path(data) / "synth.json").read_text(encoding="utf-8"))
        c = info["config"]
        sources = (["scikit-image's sample photos"] if c.get("builtin_images") else []) + list(c.get("image_dirs") or [])
        return (f"Generated by `mlkd synth` (version {info.get('version', '?')}): seed {info['seed']}, "
                f"{len(info['sequences'])} sequences of {c['frames'][0]}-{c['frames'][1]} frames at "
                f"{c['width']}x{c['height']}, from {' and '.join(sources) or 'no photos'}.")
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return ""


def training_losses_table(ml_history: list[dict[str, Any]], weights: LossConfig) -> str:
    """Base losses (cls, loc, weighted sum) of the teacher and each student on the training pairs, last ML epoch.

    Shows whether the teacher was ahead of the students at all: the KD gate only distils a student
    that does worse than the teacher on the same batch.
    """
    losses = ml_history[-1]["losses"] if ml_history else {}
    names = sorted({k.split("/")[0] for k in losses if k.endswith("/cls") and f"{k[:-4]}/loc" in losses})
    rows = [[n, losses[f"{n}/cls"], losses[f"{n}/loc"],
             weights.cls_weight * losses[f"{n}/cls"] + weights.loc_weight * losses[f"{n}/loc"]] for n in names]
    total = f"{weights.cls_weight:g} cls + {weights.loc_weight:g} loc"
    return format_table(["network", "cls", "loc", total], rows, floatfmt=".3f") if rows else ""


def model_card(p: PipelineConfig, configs: dict[str, TrainConfig], runs: dict[str, dict[str, Any]],
               split: dict[str, list[str]], best: str, val_evals, test_evals, data: str, model_file: Path,
               command: str) -> str:
    """The Markdown model card: data, training, compute, held-out results and the distillation check."""
    scores = {ev.name: ev.overall.auc for ev in test_evals}
    computes = sorted({h.get("compute", "?") for r in runs.values() for h in r["history"]})
    stage_table = format_table(["stage", "mode", "epochs", "steps", "pairs", "minutes", "pairs/s"],
                               _stage_rows(configs, runs), floatfmt=".1f")
    val_table = format_table(["student", "val success AUC"], [[ev.name, ev.overall.auc] for ev in val_evals],
                             floatfmt=".3f")
    width = configs["ml"].width or p.width
    return f"""# MLKD-Track (default model)

The compact SiamRPN-AlexNet-DW student (backbone width {width:g}, {model_file.stat().st_size / 1e6:.1f} MB of
fp16 weights) distilled with Mutual-Learning Knowledge Distillation (Liu et al., arXiv 2312.07884)
from a teacher that sees every crop through the DarkLighter enhancer. Selected student: `{best}`
(best validation success AUC). Made by:

```
{command}
```

## Data

Semi-synthetic night UAV sequences from `mlkd synth` (`{data}`), split by sequence name, the day
twins of held-out sequences held out too: {len(split['train'])} training, {len(split['val'])} validation and
{len(split['test'])} test sequences. The daytime base tracker trains on the day twins of the training
sequences; the teacher, the students and the no-KD baseline on their night versions.
{synth_provenance(data)}

## Training

{stage_table}

Compute: {'; '.join(computes)} on `{platform.node()}` ({platform.processor() or platform.machine()}).
Stage configs: `{p.base.config}`, `{p.teacher.config}`, `{p.ml.config}` with the pipeline config's
overrides; `config.json` in each stage folder holds every value.

## Selection (validation split)

{val_table}

## Held-out synthetic night test set

{results_table(test_evals)}

Distillation check, MLKD-Track success AUC > no-KD student's: {distillation_check(scores)}
The no-KD student has the same size, starts from the same daytime tracker and sees the same
night pairs with the same schedule, with the base loss only.

Base losses on the training pairs in the last ML epoch (the KD gate distils a student only
where it does worse than the teacher on the batch):

{training_losses_table(runs["ml"]["history"], configs["ml"].losses)}

Success / precision plots: `plots/success.png`, `plots/precision.png`.
"""


# ----------------------------------------------------------------------------- the whole pipeline

def run_pipeline(data: str | Path, out: str | Path, enhancer: str, config_path: str | Path,
                 overrides: dict[str, Any] | None = None, init: str | None = None, device: str = "auto",
                 progress: bool = True, command: str = "mlkd train pipeline") -> dict[str, Any]:
    """Run every stage (skipping finished ones), select MLKD-Track, evaluate, write the model card."""
    p = load_pipeline_config(config_path, overrides)
    out = Path(out)
    if not Path(enhancer).is_file():
        raise InputError(f"DarkLighter weights not found: {enhancer}")
    day, night = open_twins(data)
    train, val, test = split_names(sorted(s.name for s in night), p.val_fraction, p.test_fraction, p.split_seed)
    split = {"train": train, "val": val, "test": test}
    write_json_atomic(out / "split.json", split)
    note = {"day": f"{Path(data) / 'day'} [train split]", "night": f"{Path(data) / 'night'} [train split]"}
    configs = stage_configs(p, out, enhancer, init, note)
    train_sets = {"base": [subset(day, train, "train")], "teacher": [subset(night, train, "train")],
                  "ml": [subset(night, train, "train")], "nokd": [subset(night, train, "train")]}
    runs = {}
    for name in STAGES:
        print(f"[pipeline] stage {name} ({configs[name].mode})")
        runs[name] = run_stage(name, configs[name], out / name, train_sets[name], device, progress)
    results = out / "results"
    val_set, test_set = subset(night, val, "val"), subset(night, test, "test")
    students = student_files([str(out / "ml")])
    model_file = out / "mlkd_track.pth"
    best, val_evals = select_best(students, val_set, results, model_file, p.eval_workers, device, progress)
    print(f"[pipeline] selected {best}\n{results_table(val_evals)}")
    trackers = {"MLKD-Track": str(model_file), "no-KD-student": str(out / "nokd" / "base.pth"),
                "teacher": str(out / "teacher" / "teacher.pth"), "day-base": str(out / "base" / "base.pth"),
                **{peer.upper(): peer for peer in p.peers}}
    test_evals = evaluate_models(test_set, trackers, results, p.eval_workers, device, progress)
    from mlkd_training.evaluation.plots import plot_overall

    for kind in ("success", "precision"):
        plot_overall(test_evals, kind, out / "plots" / f"{kind}.png", test_set.name)
    summary = {"selected": best, "split": split,
               "validation": {ev.name: ev.overall.to_dict(curves=False) for ev in val_evals},
               "test": {ev.name: {**ev.overall.to_dict(curves=False), "fps": ev.fps} for ev in test_evals},
               "stages": {k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in runs.items()}}
    write_json_atomic(out / "pipeline.json", summary)
    write_text_atomic(out / "MODEL_CARD.md", model_card(p, configs, runs, split, best, val_evals, test_evals,
                                                         str(data), model_file, command))
    print(f"[pipeline] held-out test set ({test_set.name})\n{results_table(test_evals)}")
    return summary


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])(?:/[\w.+-]+)+/([\w.+-]+)")


def portable_paths(text: str) -> str:
    """Absolute paths cut to their last component: a published card names no folder of the training machine."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def publish(run_dir: str | Path, models: str | Path) -> Path:
    """Copy MLKD-Track, its model card and plots into ``models/`` and point ``mlkd_track.yaml`` at it."""
    from mlkd_tracker.config import load_model_spec
    from mlkd_tracker.nets.checkpoint import infer_width, read_checkpoint

    run_dir, models = Path(run_dir), Path(models)
    spec_path = models / "mlkd_track.yaml"
    load_model_spec(spec_path)  # must be a readable model spec
    state, _ = read_checkpoint(run_dir / "mlkd_track.pth")
    with atomic_output(models / "mlkd_track.pth") as tmp:
        shutil.copyfile(run_dir / "mlkd_track.pth", tmp)
    card = portable_paths((run_dir / "MODEL_CARD.md").read_text(encoding="utf-8"))
    card = card.replace("`plots/", "`mlkd_track_plots/")
    write_text_atomic(models / "MLKD_TRACK_CARD.md", card)
    (models / "mlkd_track_plots").mkdir(exist_ok=True)
    for png in (run_dir / "plots").glob("*.png"):
        with atomic_output(models / "mlkd_track_plots" / png.name) as tmp:
            shutil.copyfile(png, tmp)
    lines = [line for line in spec_path.read_text(encoding="utf-8").splitlines() if not line.startswith("weights:")]
    lines = [f"  width: {infer_width(state):g}        # backbone width multiplier"
             if line.strip().startswith("width:") else line for line in lines]
    at = next(i for i, line in enumerate(lines) if line.startswith("name:")) + 1
    lines.insert(at, "weights: mlkd_track.pth   # fp16 student selected by mlkd train pipeline (MLKD_TRACK_CARD.md)")
    write_text_atomic(spec_path, "\n".join(lines) + "\n")
    return models / "mlkd_track.pth"


# ----------------------------------------------------------------------------- CLI (mlkd train select / pipeline)

def add_select_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", help="student model files, or ml run folders (their student_*.pth)")
    p.add_argument("--data", required=True, help="held-out (validation) dataset folder")
    p.add_argument("--out", default="mlkd_track.pth", help="where to write the selected student")
    p.add_argument("--results", default="results", help="tracking results folder (resumable)")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights (default: fp16, half the size)")
    p.add_argument("--workers", type=int, default=1, help="parallel tracking processes")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_select_command(args: argparse.Namespace) -> int:
    from mlkd_training.pairs import open_dataset_folder

    models = student_files(args.models)
    val = open_dataset_folder(args.data)
    evaluations = evaluate_models(val, models, Path(args.results), args.workers, args.device, not args.quiet)
    best = evaluations[0].name
    path = write_selected(models[best], Path(args.out), {ev.name: ev.overall.auc for ev in evaluations},
                          half=not args.fp32)
    print(results_table(evaluations))
    print(f"selected {best} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="mlkd synth output folder (with day/ and night/ twins)")
    p.add_argument("--enhancer", required=True, help="DarkLighter weights for the teacher")
    p.add_argument("--out", default="runs/default", help="pipeline folder (stages resume and finished ones are kept)")
    p.add_argument("--config", default=None, help="pipeline YAML (default: the bundled models/pipeline_cpu.yaml)")
    p.add_argument("--init", help="a pysot siamrpn_alex_dwxcorr checkpoint to start base from (default: scratch)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pipeline value, a stage's training value (--set ml.optim.epochs=2) or one "
                        "of every stage (--set common.workers=4)")
    p.add_argument("--publish", metavar="MODELS_DIR",
                   help="afterwards copy MLKD-Track and its card there and make it the default model")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_pipeline_command(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from mlkd_tracker.cli.track import parse_overrides

    config = args.config or _config_path("pipeline_cpu.yaml")
    command = "mlkd " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run_pipeline(args.data, args.out, args.enhancer, config, parse_overrides(args.overrides), args.init,
                 args.device, not args.quiet, command)
    if args.publish:
        print(f"[pipeline] published {publish(args.out, args.publish)}")
    return 0

