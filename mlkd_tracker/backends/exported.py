"""Exported model files: how a template/search graph pair is named and the metadata it carries.

``mlkd export`` writes two graphs per model, ``<prefix>.template.onnx`` (crop -> the correlation
kernels of both RPN branches, run once per target) and ``<prefix>.search.onnx`` (crop + kernels
-> cls, loc, run per frame). Both carry the same :class:`ExportMeta` as string metadata
(``mlkd.*`` keys), so either file alone configures a tracker. TensorRT engine files carry it in
their header. No heavy imports here: the ONNX Runtime and TensorRT backends both use this.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mlkd_tracker import __version__
from mlkd_tracker.config import TrackerConfig
from mlkd_tracker.errors import InputError, ModelFileError

META_FORMAT = 1
ROLES = ("template", "search")
INPUT_LAYOUT = "NCHW float32 BGR, raw pixels 0..255 (no mean/std normalisation)"
PRECISIONS = ("fp32", "fp16", "int8")

# tensor names of the two graphs (ONNX, TensorRT engines)
TEMPLATE_INPUT = "template"
SEARCH_INPUT = "search"
KERNELS = ("kernel_cls", "kernel_loc")
OUTPUTS = ("cls", "loc")
GRAPH_INPUTS = {"template": (TEMPLATE_INPUT,), "search": (SEARCH_INPUT, *KERNELS)}
GRAPH_OUTPUTS = {"template": KERNELS, "search": OUTPUTS}


@dataclass(frozen=True)
class ExportMeta:
    """What an exported graph needs to configure a tracker: name, tracking values, architecture, shapes."""

    name: str
    tracking: TrackerConfig
    io: dict[str, tuple[int, ...]]            # every tensor of both graphs -> its fixed shape
    precision: str = "fp32"                   # of the graph's arithmetic: fp32 or int8 (fp16 is an engine's)
    arch: dict[str, Any] = field(default_factory=dict)   # width, enhancer, anchor_num
    export_id: str = ""                       # shared by the two graphs of one export
    version: str = __version__                # mlkd-tracker version that wrote the file
    input_layout: str = INPUT_LAYOUT

    def to_props(self, role: str) -> dict[str, str]:
        """``mlkd.*`` string metadata for the graph of ``role``."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        return {"mlkd.format": str(META_FORMAT), "mlkd.role": role, "mlkd.name": self.name,
                "mlkd.tracking": json.dumps(self.tracking.to_dict()), "mlkd.precision": self.precision,
                "mlkd.arch": json.dumps(self.arch), "mlkd.io": json.dumps({k: list(v) for k, v in self.io.items()}),
                "mlkd.export_id": self.export_id, "mlkd.version": self.version,
                "mlkd.input_layout": self.input_layout}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str) -> tuple["ExportMeta", str]:
        """``(meta, role)`` from ``mlkd.*`` metadata; :class:`ModelFileError` naming ``source`` when it is not ours."""
        if "mlkd.format" not in props:
            raise ModelFileError(f"{source} carries no mlkd metadata: export it with 'mlkd export' "
                                 f"(the graph alone does not say its tracking values and crop sizes)")
        try:
            fmt = int(props["mlkd.format"])
            if fmt > META_FORMAT:
                raise ModelFileError(f"{source} was written by a newer mlkd-tracker (metadata format {fmt}, "
                                     f"this version reads up to {META_FORMAT}); upgrade mlkd-tracker")
            role = props["mlkd.role"]
            meta = cls(name=props["mlkd.name"],
                       tracking=TrackerConfig.from_dict(json.loads(props["mlkd.tracking"]), source),
                       io={k: tuple(int(d) for d in v) for k, v in json.loads(props["mlkd.io"]).items()},
                       precision=props.get("mlkd.precision", "fp32"),
                       arch=json.loads(props.get("mlkd.arch", "{}")),
                       export_id=props.get("mlkd.export_id", ""),
                       version=props.get("mlkd.version", "?"),
                       input_layout=props.get("mlkd.input_layout", INPUT_LAYOUT))
        except (KeyError, ValueError, TypeError, AttributeError, InputError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{source} has malformed mlkd metadata: {exc}") from exc
        if role not in ROLES or meta.precision not in PRECISIONS:
            raise ModelFileError(f"{source}: metadata role {role!r} / precision {meta.precision!r} not understood")
        return meta, role

    def to_json(self) -> dict[str, Any]:
        """The metadata as one JSON-able dict (engine file headers)."""
        return {k: json.loads(v) if k in ("mlkd.tracking", "mlkd.arch", "mlkd.io") else v
                for k, v in self.to_props("search").items() if k != "mlkd.role"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> "ExportMeta":
        props = {k: json.dumps(v) if k in ("mlkd.tracking", "mlkd.arch", "mlkd.io") else str(v)
                 for k, v in data.items()}
        return cls.from_props({**props, "mlkd.role": "search"}, source)[0]

    def expected_io(self) -> dict[str, tuple[int, ...]]:
        """Shapes the tracker config implies for crops and score maps (kernel shapes come from ``io``)."""
        c = self.tracking
        a, s = c.anchor_num, c.score_size
        return {TEMPLATE_INPUT: (1, 3, c.exemplar_size, c.exemplar_size),
                SEARCH_INPUT: (1, 3, c.instance_size, c.instance_size),
                "cls": (1, 2 * a, s, s), "loc": (1, 4 * a, s, s)}

    def validate(self, source: str) -> None:
        """The recorded graph shapes must be the ones the tracking values imply (fixed 127 / 287 crops)."""
        missing = [n for n in (*GRAPH_INPUTS["template"], *GRAPH_INPUTS["search"], *OUTPUTS) if n not in self.io]
        if missing:
            raise ModelFileError(f"{source}: metadata lacks the shapes of {missing}")
        wrong = [f"{n}: graph {self.io[n]} vs tracking config {shape}"
                 for n, shape in self.expected_io().items() if tuple(self.io[n]) != shape]
        if wrong:
            raise ModelFileError(f"{source}: graph shapes do not fit its tracking values: " + "; ".join(wrong))


def check_tensor_shapes(actual: Mapping[str, tuple], meta: ExportMeta, role: str, source: str) -> None:
    """Compare a loaded graph's/engine's input and output shapes with the metadata; one error listing all differences."""
    names = (*GRAPH_INPUTS[role], *GRAPH_OUTPUTS[role])
    problems = []
    for name in names:
        if name not in actual:
            problems.append(f"no tensor {name!r}")
        elif tuple(int(d) for d in actual[name]) != tuple(meta.io[name]):
            problems.append(f"{name} is {tuple(actual[name])}, expected {tuple(meta.io[name])}")
    extra = sorted(set(actual) - set(names))
    if extra:
        problems.append(f"unexpected tensors {extra}")
    if problems:
        raise ModelFileError(f"{source} ({role} graph) does not match its metadata: " + "; ".join(problems))


def graph_paths(prefix: str | os.PathLike) -> dict[str, Path]:
    """``{"template": <prefix>.template.onnx, "search": <prefix>.search.onnx}``."""
    prefix = Path(prefix)
    return {role: prefix.with_name(f"{prefix.name}.{role}.onnx") for role in ROLES}


def onnx_prefix(path: str | os.PathLike) -> Path:
    """The export prefix of an ONNX path: ``a/b.search.onnx``, ``a/b.template.onnx`` or ``a/b.onnx`` -> ``a/b``."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ModelFileError(f"{path} is not an .onnx file")
    stem = path.name[: -len(".onnx")]
    for role in ROLES:
        if stem.endswith("." + role):
            stem = stem[: -len(role) - 1]
    return path.with_name(stem)


def find_graph_pair(path: str | os.PathLike) -> dict[str, Path]:
    """Both graphs of the export ``path`` belongs to (either graph, or ``<prefix>.onnx`` for the pair)."""
    pair = graph_paths(onnx_prefix(path))
    missing = [str(p) for p in pair.values() if not p.is_file()]
    if missing:
        raise ModelFileError(f"model {path}: missing {', '.join(missing)} (mlkd export writes a "
                             f"<name>.template.onnx / <name>.search.onnx pair; keep both together)")
    return pair


def file_bytes(paths) -> int:
    """Total size of existing files (model sizes in benchmarks)."""
    return sum(Path(p).stat().st_size for p in paths if Path(p).is_file())


def read_onnx_meta(path: str | os.PathLike) -> tuple[ExportMeta, str]:
    """``(meta, role)`` of an exported ONNX graph, read with the ``onnx`` package (no session needed)."""
    try:
        import onnx
    except ImportError:
        raise ModelFileError("reading ONNX metadata needs the onnx package: pip install onnx") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others for a bad file
        raise ModelFileError(f"{path} is not a readable ONNX file: {exc}") from exc
    return ExportMeta.from_props({p.key: p.value for p in model.metadata_props}, str(path))
