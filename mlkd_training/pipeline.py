"""The pipeline that makes the default MLKD-Track model, and the selection of the best student.

``mlkd train pipeline --data DATA --enhancer darklighter.pth [--init nanotrackv2.pth] --out runs/x``:

1. data: ``DATA`` is either real daytime footage (any layout the readers know, e.g. UAV123-style
   videos) or an ``mlkd synth`` folder (``day/`` + ``night/`` twins). Sequences are split by name
   into train / validation / test, by a fixed split file (``split:``) or by fractions; nothing of a
   held-out sequence enters training. Real footage is turned into night with the low-light camera
   model (``mlkd darken``'s, one camera per sequence): ``night.versions`` versions of each training
   sequence, one of each held-out sequence, with the ranges of ``night.ranges``;
2. ``base`` (when ``train_base``): the daytime tracker from the day training sequences; otherwise
   ``--init`` (e.g. the released NanoTrack) is the start every network below begins from;
3. ``teacher``: the start behind frozen DarkLighter, fine-tuned on the night training pairs;
4. ``ml``: three students from the start in the mutual-learning room, distilled from the teacher,
   and in the same room, on the same pairs, outside the election: the single-KD students
   (``kd_<loss>``) and the no-distillation baseline (``nokd``);
5. selection: the ML student with the best success AUC on the validation night split becomes
   MLKD-Track, written as fp16 weights;
6. evaluation on the test split at night: MLKD-Track, the start, the teacher (fine-tuned and as
   built, without fine-tuning), the no-KD and single-KD students and the OpenCV peers; by day
   (real footage): MLKD-Track, the start, the no-KD student and the peers. Tables, JSON, plots, and a
   model card with the targets checked.

Each stage is a run folder under ``--out``; re-running the command skips finished stages and
resumes an interrupted one from its last epoch (tracking results and night data are kept too).
Stage settings come from a pipeline YAML (``models/pipeline_nanotrack_cpu.yaml``: NanoTrack on real
footage sized for a 2-core CPU; ``pipeline_nanotrack_gpu.yaml``: reference scale; ``pipeline_siamrpn_cpu.yaml``:
the SiamRPN demonstration model on synthetic data) that names a training config per stage plus overrides.
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

STAGES = ("base", "teacher", "ml")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: a training config YAML (bundled name or path) and dotted overrides."""

    config: str
    set: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NightConfig:
    """How real daytime footage becomes night data (``mlkd darken``'s camera model)."""

    versions: int = 2          # night versions of every training sequence (other cameras)
    seed: int = 0              # camera seed of the first training version; held-out splits use seed + 100
    ranges: dict = field(default_factory=dict)  # NightRanges changes, e.g. {mean_level: [0.025, 0.16]}


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline trains and how it splits and evaluates (``models/pipeline_*.yaml``)."""

    width: float = 0.5
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    split_seed: int = 0
    split: str | None = None   # a YAML of sequence names {train: [...], val: [...], test: [...]} (fixed split)
    train_base: bool = True    # False: --init is the start (a released tracker), no base stage
    night: NightConfig = NightConfig()
    base: StageConfig = StageConfig("train_base.yaml")
    teacher: StageConfig = StageConfig("train_teacher.yaml")
    ml: StageConfig = StageConfig("train_ml.yaml")
    common: dict = field(default_factory=dict)  # training overrides applied to every stage first
    peers: tuple[str, ...] = ("csrt", "kcf")
    eval_workers: int = 2

    def __post_init__(self) -> None:
        if not (0 < self.val_fraction and 0 < self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise InputError("pipeline: need val_fraction > 0, test_fraction > 0 and their sum < 1")
        if self.night.versions < 1:
            raise InputError("pipeline: night.versions must be at least 1")


def load_pipeline_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """A pipeline YAML, then dotted overrides (``ml.set.optim.epochs=2`` style keys are kept whole)."""
    data = read_yaml(path, "pipeline config")
    for dotted, value in (overrides or {}).items():
        stage, _, rest = dotted.partition(".")
        if stage in ("base", "teacher", "ml") and rest and rest != "config":
            data.setdefault(stage, {}).setdefault("set", {})[rest] = value  # a training key of that stage
        elif stage == "common" and rest:
            data.setdefault("common", {})[rest] = value
        elif stage == "night" and rest.startswith("ranges."):
            data.setdefault("night", {}).setdefault("ranges", {})[rest[len("ranges."):]] = value
        else:
            set_dotted(data, dotted, value)
    return build_dataclass(PipelineConfig, data, str(path))


def _config_path(name: str) -> Path:
    from mlkd_tracker.config import models_dir

    path = Path(name)
    return path if path.is_file() else models_dir() / name


def start_network(p: PipelineConfig, out: Path, init: str | None) -> str:
    """The network every stage begins from: the trained base, or ``--init`` when there is no base stage."""
    if p.train_base:
        return str(out / "base" / "base.pth")
    if init is None or not Path(init).is_file():
        raise InputError(f"this pipeline config has no base stage (train_base: false): give the tracker to start "
                         f"from with --init (e.g. a released nanotrackv2.pth){f'; not found: {init}' if init else ''}")
    return str(init)


def stage_configs(p: PipelineConfig, out: Path, enhancer: str, init: str | None,
                  data_note: dict[str, str]) -> dict[str, TrainConfig]:
    """The stages' training configs, chained through the run folders under ``out``."""
    start = start_network(p, out, init)
    configs = {}
    if p.train_base:
        configs["base"] = load_train_config(_config_path(p.base.config), {**p.common, **p.base.set}, mode="base",
                                            init=init, width=None if init else p.width,
                                            data=[{"path": data_note["day"]}])
    configs["teacher"] = load_train_config(_config_path(p.teacher.config), {**p.common, **p.teacher.set},
                                           mode="teacher", init=start, enhancer=enhancer,
                                           data=[{"path": data_note["night"]}])
    # the single-KD and no-KD baselines share the ML room: same pairs, schedule and frozen head outputs
    configs["ml"] = load_train_config(_config_path(p.ml.config), {**p.common, **p.ml.set, "baselines": ["kd", "nokd"]},
                                      mode="ml", init=start, teacher=str(out / "teacher" / "teacher.pth"),
                                      data=[{"path": data_note["night"]}])
    return configs


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


def read_split(path: str | Path, names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """A fixed split from a YAML file ``{train, val, test}``: every listed sequence must exist, none twice."""
    data = read_yaml(_config_path(str(path)), "split file")
    parts = [sorted(str(n) for n in data.get(k) or []) for k in ("train", "val", "test")]
    listed = [n for part in parts for n in part]
    missing, repeated = sorted(set(listed) - set(names)), sorted({n for n in listed if listed.count(n) > 1})
    if missing or repeated or not all(parts):
        raise InputError(f"split file {path}: needs non-empty train, val and test lists of sequences of the data"
                         + (f"; not in the data: {missing}" if missing else "")
                         + (f"; listed twice: {repeated}" if repeated else ""))
    return parts[0], parts[1], parts[2]


def night_sets(p: PipelineConfig, day: Dataset, split: dict[str, list[str]], out: Path,
               progress: bool) -> dict[str, list[Dataset]]:
    """Night versions of real daytime footage per split, written once under ``out/data`` (resumable).

    Training sequences get ``night.versions`` cameras (seeds ``night.seed`` + k); the held-out
    splits one camera each (seed ``night.seed + 100``), so no held-out frame is seen in training
    in any form.
    """
    from mlkd_training.data.darken import darken_dataset
    from mlkd_training.data.degrade import NightRanges
    from mlkd_training.pairs import open_dataset_folder

    ranges = NightRanges().replace(**p.night.ranges)
    plan = {"train": [(f"night-train-{k}", p.night.seed + k) for k in range(p.night.versions)],
            "val": [("night-val", p.night.seed + 100)], "test": [("night-test", p.night.seed + 100)]}
    sets: dict[str, list[Dataset]] = {}
    for part, versions in plan.items():
        sets[part] = []
        for folder, seed in versions:
            darken_dataset(subset(day, split[part], folder), out / "data" / folder, seed=seed, ranges=ranges,
                           store="jpeg", progress=progress)
            sets[part].append(open_dataset_folder(out / "data" / folder))
    return sets


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
    meta = {**meta, "name": "MLKD-Track", "arch": {**model.arch(), "enhancer": False},
            "selection": {"from": Path(model_file).stem, "val_success_auc": selected_from}}
    return save_checkpoint(model, out, meta, half=half)


def results_table(evaluations) -> str:
    return format_table(["tracker", "success AUC", "precision@20", "norm. precision", "FPS"],
                        [[ev.name, ev.overall.auc, ev.overall.precision_20, ev.overall.norm_precision_20,
                          ev.fps if ev.fps is not None else float("nan")] for ev in evaluations], floatfmt=".3f")


# ----------------------------------------------------------------------------- model card

def _stage_rows(configs: dict[str, TrainConfig], runs: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for name, c in configs.items():
        history = runs[name]["history"]
        steps = sum(h["steps"] for h in history)
        seconds = sum(h["seconds"] for h in history)
        learners = len(c.students) * (1 + ("kd" in c.baselines)) + ("nokd" in c.baselines) if c.mode == "ml" else 1
        rows.append([name, c.mode, learners, len(history), steps, steps * c.optim.batch_size, seconds / 60,
                     steps * c.optim.batch_size / seconds if seconds else float("nan")])
    return rows


def target_checks(night: dict[str, float], day: dict[str, float]) -> list[list[Any]]:
    """The issue's targets on the test split: each with its figures and whether it holds."""
    kd = {k: v for k, v in night.items() if k.startswith("KD-")}
    best_kd = max(kd, key=kd.get) if kd else None
    checks = [("MLKD-Track >= start + 0.05 (night)", night.get("MLKD-Track"), night.get("start"), 0.05, "ge"),
              ("MLKD-Track >= no-KD student (night)", night.get("MLKD-Track"), night.get("no-KD"), 0.0, "ge"),
              ("MLKD-Track within 0.02 of the teacher (night)", night.get("MLKD-Track"), night.get("teacher"), 0.02,
               "near"),
              (f"ML student >= best single-KD ({best_kd}, night)", night.get("MLKD-Track"),
               night.get(best_kd) if best_kd else None, 0.0, "ge"),
              ("MLKD-Track >= start - 0.02 (day)", day.get("MLKD-Track"), day.get("start"), -0.02, "ge")]
    rows = []
    for text, a, b, margin, kind in checks:
        if a is None or b is None:
            rows.append([text, "-", "-", "not measured"])
            continue
        ok = a >= b + margin if kind == "ge" else a >= b - margin
        rows.append([text, f"{a:.3f}", f"{b:.3f}", "met" if ok else "missed"])
    return rows


def data_provenance(data: str | Path) -> str:
    """How the data was made: ``mlkd synth`` settings, or the credits of real footage."""
    try:
        info = json.loads((Path(data) / "synth.json").read_text(encoding="utf-8"))
        c = info["config"]
        sources = (["scikit-image's sample photos"] if c.get("builtin_images") else []) + list(c.get("image_dirs") or [])
        return (f"Generated by `mlkd synth` (version {info.get('version', '?')}): seed {info['seed']}, "
                f"{len(info['sequences'])} sequences of {c['frames'][0]}-{c['frames'][1]} frames at "
                f"{c['width']}x{c['height']}, from {' and '.join(sources) or 'no photos'}.")
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass
    sources = Path(data) / "SOURCES.tsv"
    if sources.is_file():
        datasets = sorted({line.split("\t")[1] for line in sources.read_text(encoding="utf-8").splitlines()[1:]
                           if line.count("\t") >= 2})
        return ("Real daytime UAV sequences from " + ", ".join(datasets) + " (" + ", ".join(
            CREDITS[d] for d in datasets if d in CREDITS) + "), published for research use.")
    return ""


CREDITS = {"UAV123@10fps": "UAV123: Mueller et al., ECCV 2016", "UAV123": "UAV123: Mueller et al., ECCV 2016",
           "UAVDT": "UAVDT: Du et al., ECCV 2018", "DTB70": "DTB70: Li and Yeung, AAAI 2017",
           "OTB100": "OTB: Wu et al., TPAMI 2015"}


def training_losses_table(ml_history: list[dict[str, Any]], weights: LossConfig) -> str:
    """Base losses (cls, loc, weighted sum) of the teacher and each learner on the training pairs, last ML epoch.

    Shows whether the teacher was ahead of the students at all: the KD gate only distils a student
    that does worse than the teacher on the same batch.
    """
    losses = ml_history[-1]["losses"] if ml_history else {}
    names = sorted({k.split("/")[0] for k in losses if k.endswith("/cls") and f"{k[:-4]}/loc" in losses})
    rows = [[n, losses[f"{n}/cls"], losses[f"{n}/loc"],
             weights.cls_weight * losses[f"{n}/cls"] + weights.loc_weight * losses[f"{n}/loc"]] for n in names]
    total = f"{weights.cls_weight:g} cls + {weights.loc_weight:g} loc"
    return format_table(["network", "cls", "loc", total], rows, floatfmt=".3f") if rows else ""


def _timing_table(evaluations) -> str:
    fps = {ev.name: ev.fps for ev in evaluations if ev.fps}
    if "teacher" not in fps or "MLKD-Track" not in fps:
        return ""
    rows = [[n, 1000.0 / fps[n]] for n in ("teacher", "teacher (no fine-tuning)", "MLKD-Track", "start") if n in fps]
    return (format_table(["tracker", "ms per frame (tracker calls)"], rows, floatfmt=".1f")
            + f"\n\nThe teacher costs {fps['MLKD-Track'] / fps['teacher']:.1f}x MLKD-Track's time per frame.")


def model_card(p: PipelineConfig, configs: dict[str, TrainConfig], runs: dict[str, dict[str, Any]],
               split: dict[str, list[str]], best: str, val_evals, test_evals, day_evals, data: str,
               model_file: Path, start: dict[str, str], synthetic: bool, command: str) -> str:
    """The Markdown model card: data, starting weights, training, compute, held-out results, target checks."""
    night = {ev.name: ev.overall.auc for ev in test_evals}
    day = {ev.name: ev.overall.auc for ev in day_evals}
    computes = sorted({h.get("compute", "?") for r in runs.values() for h in r["history"]})
    stage_table = format_table(["stage", "mode", "networks", "epochs", "steps", "pairs", "minutes", "pairs/s"],
                               _stage_rows(configs, runs), floatfmt=".1f")
    val_table = format_table(["tracker", "val success AUC"], [[ev.name, ev.overall.auc] for ev in val_evals],
                             floatfmt=".3f")
    checks = format_table(["target", "MLKD-Track", "against", "verdict"], target_checks(night, day))
    size = model_file.stat().st_size / 1e6
    nights = ("the night twins written by `mlkd synth`" if synthetic else
              f"{p.night.versions} night version(s) of each training sequence and one of each held-out one, "
              f"from the low-light camera model (`mlkd darken`) with "
              f"{', '.join(f'{k} {v}' for k, v in p.night.ranges.items()) or 'its default ranges'}, one camera per "
              f"sequence and version")
    day_section = (f"## Held-out test split by day\n\n{results_table(day_evals)}\n\nPlots: `plots/day_success.png`."
                   if day_evals else "")
    return f"""# MLKD-Track (default model)

{start['description']}, distilled with Mutual-Learning Knowledge Distillation (Liu et al., arXiv
2312.07884) from a teacher that sees every crop through the DarkLighter low-light enhancer (Ye et al.,
IROS 2021; official weights, Apache-2.0, from the MLKD repository). {size:.1f} MB of fp16 weights.
Selected student: `{best}` (best validation success AUC at night). Made by:

```
{command}
```

## Starting weights

{start['credit']}

## Data

{data_provenance(data)} (`{data}`), split by sequence ({'fixed split file ' + p.split if p.split else 'by fractions'}):
{len(split['train'])} training, {len(split['val'])} validation and {len(split['test'])} test sequences (names in
`split.json`); no validation or test sequence enters training in any form. Night: {nights}.

## Training

{stage_table}

Compute: {'; '.join(computes)} on {platform.processor() or platform.machine()}.
Stage configs: {', '.join(f'`{getattr(p, n).config}`' for n in configs)} with the pipeline config's overrides;
`config.json` in each stage folder holds every value. The single-KD students (`kd_<loss>`) and the no-KD
student (`nokd`) trained in the ML room on the same pairs, outside the election.

## Selection (validation split, night)

{val_table}

## Held-out test split at night

{results_table(test_evals)}

`start` is the network every student started from ({start['name']}); `teacher (no fine-tuning)` is
DarkLighter in front of it as built. Plots: `plots/success.png`, `plots/precision.png`.

{day_section}

## Targets

{checks}

## Cost

{_timing_table(test_evals)}

Base losses on the training pairs in the last ML epoch (the KD gate distils a student only
where it does worse than the teacher on the batch):

{training_losses_table(runs["ml"]["history"], configs["ml"].losses)}
"""


# ----------------------------------------------------------------------------- the whole pipeline

def describe_start(path: str, trained_base: bool) -> dict[str, str]:
    """Name, one-line description and credit of the network the students start from."""
    from mlkd_tracker.nets.checkpoint import load_network

    from mlkd_tracker.config import architecture_name

    model, _ = load_network(path)
    arch = model.arch()
    name = architecture_name(arch)
    if arch["type"] == "nanotrack":
        return {"name": f"{name}, `{Path(path).name}`",
                "description": f"{name} (MobileNetV3 backbone, point head)",
                "credit": (f"The students and the teacher start from the released {name} "
                           f"weights (`{Path(path).name}`) by Honglin Chu et al. (HonglinChu/SiamTrackers, "
                           f"NanoTrack), Apache-2.0; this model is a derivative of them under the same licence.")}
    kind = f"{name} (BN-AlexNet backbone, depthwise-correlation RPN head)"
    return {"name": "the daytime base" if trained_base else f"`{Path(path).name}`", "description": kind,
            "credit": "Trained from scratch by this pipeline (the daytime base stage)." if trained_base
            else f"Starts from `{Path(path).name}`."}


def run_pipeline(data: str | Path, out: str | Path, enhancer: str, config_path: str | Path,
                 overrides: dict[str, Any] | None = None, init: str | None = None, device: str = "auto",
                 progress: bool = True, command: str = "mlkd train pipeline") -> dict[str, Any]:
    """Run every stage (skipping finished ones), select MLKD-Track, evaluate, write the model card."""
    from mlkd_training.evaluation.plots import plot_overall
    from mlkd_training.pairs import open_dataset_folder

    p = load_pipeline_config(config_path, overrides)
    out = Path(out)
    if not Path(enhancer).is_file():
        raise InputError(f"DarkLighter weights not found: {enhancer}")
    synthetic = (Path(data) / "day").is_dir() and (Path(data) / "night").is_dir()
    day, night = open_twins(data) if synthetic else (open_dataset_folder(data), None)
    names = sorted(s.name for s in day)
    train, val, test = (read_split(p.split, names) if p.split else
                        split_names(names, p.val_fraction, p.test_fraction, p.split_seed))
    split = {"train": train, "val": val, "test": test}
    write_json_atomic(out / "split.json", split)
    if synthetic:
        nights = {part: [subset(night, split[part], part)] for part in split}
    else:
        nights = night_sets(p, day, split, out, progress)
    note = {"day": f"{Path(data) / 'day' if synthetic else data} [train split]",
            "night": f"{'night twins' if synthetic else 'night versions'} [train split]"}
    configs = stage_configs(p, out, enhancer, init, note)
    train_sets = {"base": [subset(day, train, "train")], "teacher": nights["train"], "ml": nights["train"]}
    runs = {}
    for name, config in configs.items():
        print(f"[pipeline] stage {name} ({config.mode})")
        runs[name] = run_stage(name, config, out / name, train_sets[name], device, progress)
    start = start_network(p, out, init)
    teacher0 = out / "teacher0.pth"
    if not teacher0.is_file():  # DarkLighter in front of the start as built: the teacher before fine-tuning
        from mlkd_training.teacher import build_teacher, save_teacher

        built, meta = build_teacher(enhancer, start)
        save_teacher(built, teacher0, {**meta, "name": "MLKD teacher, no fine-tuning"})
    results = out / "results"
    val_set, test_set = nights["val"][0], nights["test"][0]
    students = student_files([str(out / "ml")])
    model_file = out / "mlkd_track.pth"
    val_evals = evaluate_models(val_set, {**students, "start": start}, results, p.eval_workers, device, progress)
    best = next(ev.name for ev in val_evals if ev.name in students)
    write_selected(students[best], model_file, {ev.name: ev.overall.auc for ev in val_evals})
    print(f"[pipeline] selected {best}\n{results_table(val_evals)}")
    ml_dir = out / "ml"
    baselines = {"no-KD": str(ml_dir / "nokd.pth"),
                 **{f"KD-{f.stem[3:]}": str(f) for f in sorted(ml_dir.glob("kd_*.pth"))}}
    peers = {peer.upper(): peer for peer in p.peers}
    trackers = {"MLKD-Track": str(model_file), "start": start, "teacher": str(out / "teacher" / "teacher.pth"),
                "teacher (no fine-tuning)": str(teacher0), **baselines, **peers}
    test_evals = evaluate_models(test_set, trackers, results, p.eval_workers, device, progress)
    day_evals = []
    if not synthetic:
        day_trackers = {"MLKD-Track": str(model_file), "start": start, "no-KD": baselines["no-KD"], **peers}
        day_evals = evaluate_models(subset(day, test, "day-test"), day_trackers, results, p.eval_workers, device,
                                    progress)
        plot_overall(day_evals, "success", out / "plots" / "day_success.png", f"{day.name}-day-test")
    for kind in ("success", "precision"):
        plot_overall(test_evals, kind, out / "plots" / f"{kind}.png", test_set.name)
    described = describe_start(start, p.train_base)
    summary = {"selected": best, "split": split, "start": start,
               "validation": {ev.name: ev.overall.to_dict(curves=False) for ev in val_evals},
               "test": {ev.name: {**ev.overall.to_dict(curves=False), "fps": ev.fps} for ev in test_evals},
               "test_day": {ev.name: {**ev.overall.to_dict(curves=False), "fps": ev.fps} for ev in day_evals},
               "targets": target_checks({ev.name: ev.overall.auc for ev in test_evals},
                                        {ev.name: ev.overall.auc for ev in day_evals}),
               "stages": {k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in runs.items()}}
    write_json_atomic(out / "pipeline.json", summary)
    write_text_atomic(out / "MODEL_CARD.md", model_card(p, configs, runs, split, best, val_evals, test_evals,
                                                         day_evals, str(data), model_file, described, synthetic,
                                                         command))
    print(f"[pipeline] held-out test split at night ({test_set.name})\n{results_table(test_evals)}")
    if day_evals:
        print(f"[pipeline] held-out test split by day\n{results_table(day_evals)}")
    print(format_table(["target", "MLKD-Track", "against", "verdict"], summary["targets"]))
    return summary


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])(?:/[\w.+-]+)+/([\w.+-]+)")


def portable_paths(text: str) -> str:
    """Absolute paths cut to their last component: a published card names no folder of the training machine."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def publish(run_dir: str | Path, models: str | Path) -> Path:
    """Copy MLKD-Track, its model card and plots into ``models/`` and write ``mlkd_track.yaml`` for it.

    The YAML is written from the model's own metadata (architecture, tracking values), so whichever
    architecture the pipeline trained becomes the model ``mlkd track``, ``mlkd demo`` and the node use.
    """
    import yaml

    from mlkd_tracker.config import TrackerConfig, load_model_spec
    from mlkd_tracker.nets.checkpoint import read_checkpoint

    run_dir, models = Path(run_dir), Path(models)
    _, meta = read_checkpoint(run_dir / "mlkd_track.pth")
    tracking = TrackerConfig.from_dict(meta["tracking"], str(run_dir / "mlkd_track.pth")).to_dict()
    with atomic_output(models / "mlkd_track.pth") as tmp:
        shutil.copyfile(run_dir / "mlkd_track.pth", tmp)
    card = portable_paths((run_dir / "MODEL_CARD.md").read_text(encoding="utf-8"))
    card = card.replace("`plots/", "`mlkd_track_plots/")
    write_text_atomic(models / "MLKD_TRACK_CARD.md", card)
    (models / "mlkd_track_plots").mkdir(exist_ok=True)
    for png in (run_dir / "plots").glob("*.png"):
        with atomic_output(models / "mlkd_track_plots" / png.name) as tmp:
            shutil.copyfile(png, tmp)
    arch = {k: v for k, v in meta["arch"].items() if k in ("type", "width", "version")}
    spec = {"name": "MLKD-Track", "weights": "mlkd_track.pth", "arch": {**arch, "enhancer": False},
            "tracking": tracking}
    header = ("# MLKD-Track, the default model: written by `mlkd train pipeline --publish` from the selected\n"
              "# student's metadata (MLKD_TRACK_CARD.md says how it was made).\n")
    write_text_atomic(models / "mlkd_track.yaml", header + yaml.safe_dump(spec, sort_keys=False))
    load_model_spec(models / "mlkd_track.yaml")  # readable, valid tracking values
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
    p.add_argument("--data", required=True, help="real daytime footage (a dataset folder, e.g. UAV123-style videos: "
                                                 "night versions are made from it) or an mlkd synth folder (day/ and "
                                                 "night/ twins)")
    p.add_argument("--enhancer", required=True, help="DarkLighter weights for the teacher")
    p.add_argument("--out", default="runs/default", help="pipeline folder (stages resume and finished ones are kept)")
    p.add_argument("--config", default=None, help="pipeline YAML (default: the bundled models/pipeline_nanotrack_cpu.yaml; "
                                                  "models/pipeline_nanotrack_gpu.yaml at reference scale; "
                                                  "models/pipeline_siamrpn_cpu.yaml for the SiamRPN demonstration model)")
    p.add_argument("--init", help="the tracker every network starts from (e.g. a released nanotrackv2.pth; required "
                                  "when the config has no base stage), or a pysot checkpoint the base continues from")
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

    config = args.config or _config_path("pipeline_nanotrack_cpu.yaml")
    command = "mlkd " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run_pipeline(args.data, args.out, args.enhancer, config, parse_overrides(args.overrides), args.init,
                 args.device, not args.quiet, command)
    if args.publish:
        print(f"[pipeline] published {publish(args.out, args.publish)}")
    return 0

