"""Typed, validated view of ``params.yaml``.

Every section is a frozen pydantic model that rejects unknown keys. ``load_params`` turns any
validation failure into one ``ParamsError`` whose lines name the dotted key, the bad value and
what is allowed, so a typo in ``params.yaml`` fails before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

GAN_KINDS = ("acgan", "d2gan")
DIFFAUGMENT_OPS = ("translation", "cutout")
# Arms of the downstream audit; gan arms name a run of gan.runs as "gan:<run>".
ARM_KINDS = ("real", "classic", "oversample", "class_weight")
GAN_ARM_KINDS = ("gan", "gan_classic")


class ParamsError(ValueError):
    """``params.yaml`` is missing, malformed or holds a bad value."""


# YAML's true/false only: a quoted "yes" or 1 is a typo, not a switch.
Flag = Annotated[bool, Strict()]
# Run names become file names and command-line arguments.
RunName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class MniParams(Section):
    patch_size: Annotated[int, Field(ge=8, le=64, multiple_of=4)]
    slice_step: Annotated[int, Field(ge=1, le=20)]
    stride: Annotated[int, Field(ge=1, le=64)]
    slab_slices: Annotated[int, Field(ge=2, le=60)]
    guard_slices: Annotated[int, Field(ge=0, le=20)]
    label_threshold: Annotated[float, Field(gt=0.5, le=1.0)]


class IntensityParams(Section):
    """Intensity policy: how file units map to float32 [0, 1]."""

    policy: Literal["window", "percentile", "fixed", "native"]
    window_centre: float | None  # window: file units (e.g. HU); null: the file's VOI window
    window_width: Annotated[float, Field(gt=0)] | None
    percentiles: tuple[float, float]  # percentile: (lo, hi) in [0, 100]
    range: tuple[float, float] | None  # fixed: (lo, hi) file units, e.g. (20.0, 40.0) degC

    @model_validator(mode="after")
    def _consistent(self) -> IntensityParams:
        if (self.window_centre is None) != (self.window_width is None):
            raise ValueError("set both window_centre and window_width, or neither (file VOI)")
        lo, hi = self.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {lo}, {hi}")
        if self.policy == "fixed" and (self.range is None or self.range[0] >= self.range[1]):
            raise ValueError(f"policy fixed needs range [lo, hi] with lo < hi, got {self.range}")
        return self


class VolumeParams(Section):
    """How NIfTI volumes become 2-D slices."""

    slice_axis: Literal["axial", "coronal", "sagittal"]
    slice_policy: Literal["all", "middle"]
    slice_step: Annotated[int, Field(ge=1)]
    four_d: Literal["all", "first", "index", "reject"]
    volume_index: Annotated[int, Field(ge=0)]


class FolderParams(Section):
    """``data.folder``: where users' files are and how to turn them into images."""

    root: str
    layout: Literal["manifest", "folders", "medmnist"]
    manifest: str | None  # manifest layout: CSV path under root
    medmnist_file: str | None  # medmnist layout: .npz path under root
    patient_from: Literal["dicom", "parent", "stem"]  # folders layout
    formats: Annotated[list[Format], Field(min_length=1)]
    class_names: list[str] | None  # class order; null: sorted folder names or labels
    intensity: IntensityParams
    volume: VolumeParams
    target_size: Annotated[int, Field(ge=8, le=1024)]
    aspect: Literal["stretch", "pad"]
    channels: Literal[1, 3]
    stop_on_error: Flag
    key_file: str | None  # null: read the key from $SCARCE_AUG_PSEUDONYM_KEY

    @model_validator(mode="after")
    def _layout_file(self) -> FolderParams:
        if self.layout == "manifest" and not self.manifest:
            raise ValueError("layout manifest needs manifest: <csv under root>")
        if self.layout == "medmnist" and not self.medmnist_file:
            raise ValueError("layout medmnist needs medmnist_file: <npz under root>")
        return self


Format = Literal["dicom", "nifti", "png", "tiff", "npy"]


class DataParams(Section):
    source: Literal["mni152", "folder"]
    val_fraction: Fraction
    test_fraction: Fraction
    minority_train_cap: Annotated[int, Field(ge=0)]
    mni: MniParams | None
    folder: FolderParams | None

    @model_validator(mode="after")
    def _source_has_its_section(self) -> DataParams:
        section = {"mni152": "mni", "folder": "folder"}[self.source]
        if getattr(self, section) is None:
            raise ValueError(f"source is {self.source!r} but data.{section} is null; fill it in")
        return self

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataParams:
        if self.val_fraction + self.test_fraction >= 0.8:
            raise ValueError(
                f"val_fraction + test_fraction must stay below 0.8 to leave training data, "
                f"got {self.val_fraction} + {self.test_fraction}"
            )
        return self


class GanRun(Section):
    kind: Literal["acgan", "d2gan"]
    constraints: Flag  # train with the constraints of params' constraints section


def _ordered(q: tuple[float, float]) -> tuple[float, float]:
    if not q[0] < q[1]:
        raise ValueError(f"expected quantiles lo < hi, got {list(q)}")
    return q


Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Quantiles = Annotated[tuple[Unit, Unit], AfterValidator(_ordered)]  # (lo, hi) in [0, 1]


class IntensityRangeSettings(Section):
    range: tuple[float, float] | None  # [lo, hi] in the prepared [0, 1] scale; null: quantiles
    quantiles: Quantiles  # per-class pixel quantiles of the real training images
    tolerance: Annotated[float, Field(ge=0.0)]  # mean pixel distance outside allowed per image

    @field_validator("range")
    @classmethod
    def _range_ordered(cls, r: tuple[float, float] | None) -> tuple[float, float] | None:
        if r is not None and not 0.0 <= r[0] < r[1] <= 1.0:
            raise ValueError(f"expected 0 <= lo < hi <= 1 (prepared scale), got {list(r)}")
        return r


class ClassStatsSettings(Section):
    quantiles: Quantiles  # per-image mean/std/histogram-distance range of the real class
    bins: Annotated[int, Field(ge=4, le=256)]  # histogram bins over [0, 1]
    tolerance: Annotated[float, Field(ge=0.0)]  # hinge excess allowed, in real-spread units


class SupportSettings(Section):
    threshold: Annotated[float, Field(ge=0.0, lt=1.0)]  # a pixel above this has signal
    min_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]  # of real class images, for support
    tolerance: Annotated[float, Field(ge=0.0)]  # mean signal allowed outside the support


class SmoothnessSettings(Section):
    quantiles: Quantiles  # per-image total-variation range of the real class
    tolerance: Annotated[float, Field(ge=0.0)]  # hinge excess allowed, in real-spread units


class OracleSettings(Section):
    min_confidence: Annotated[float, Field(gt=0.0, lt=1.0)]  # p(intended class) required


class _ConstraintBase(Section):
    weight: Annotated[float, Field(ge=0.0)]  # weight of the loss term in G's loss


class IntensityRangeSpec(_ConstraintBase):
    name: Literal["intensity_range"]
    settings: IntensityRangeSettings


class ClassStatsSpec(_ConstraintBase):
    name: Literal["class_stats"]
    settings: ClassStatsSettings


class SupportSpec(_ConstraintBase):
    name: Literal["support"]
    settings: SupportSettings


class SmoothnessSpec(_ConstraintBase):
    name: Literal["smoothness"]
    settings: SmoothnessSettings


class OracleSpec(_ConstraintBase):
    name: Literal["oracle"]
    settings: OracleSettings


ConstraintSpec = Annotated[
    IntensityRangeSpec | ClassStatsSpec | SupportSpec | SmoothnessSpec | OracleSpec,
    Field(discriminator="name"),
]
CONSTRAINT_NAMES = ("intensity_range", "class_stats", "support", "smoothness", "oracle")


class GanParams(Section):
    runs: Annotated[dict[RunName, GanRun], Field(min_length=1)]
    latent_dim: Annotated[int, Field(ge=2, le=512)]
    width: Annotated[int, Field(ge=4, le=256)]
    steps: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=2, le=4096)]
    lr_g: Annotated[float, Field(gt=0.0, le=1.0)]
    lr_d: Annotated[float, Field(gt=0.0, le=1.0)]
    beta1: Annotated[float, Field(ge=0.0, lt=1.0)]
    beta2: Annotated[float, Field(ge=0.0, lt=1.0)]
    class_weight: Annotated[float, Field(ge=0.0)]
    d2gan_alpha: Annotated[float, Field(gt=0.0, le=1.0)]
    d2gan_beta: Annotated[float, Field(gt=0.0, le=1.0)]
    diffaugment: list[Literal["translation", "cutout"]]
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)]
    select_every: Annotated[int, Field(ge=1)]
    select_samples: Annotated[int, Field(ge=2, le=10_000)]
    on_nonfinite: Literal["stop", "rollback"]
    max_rollbacks: Annotated[int, Field(ge=0, le=100)]
    log_every: Annotated[int, Field(ge=1)]
    mixed_precision: Flag

    @field_validator("diffaugment")
    @classmethod
    def _distinct_ops(cls, ops: list[str]) -> list[str]:
        if len(set(ops)) != len(ops):
            raise ValueError(f"expected distinct DiffAugment ops, got {ops}")
        return ops


class SynthParams(Section):
    target: Literal["majority", "ratio"]
    ratio: Annotated[float, Field(gt=0.0, le=100.0)]
    classes: Literal["minority", "all_below_target"]
    grid_per_class: Annotated[int, Field(ge=1, le=256)]
    min_confidence: Annotated[float, Field(ge=0.0, lt=1.0)]
    max_draw_factor: Annotated[float, Field(ge=1.0, le=100.0)]


class ClassifierParams(Section):
    width: Annotated[int, Field(ge=4, le=256)]
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=2, le=4096)]
    lr: Annotated[float, Field(gt=0.0, le=1.0)]
    weight_decay: Annotated[float, Field(ge=0.0)]


class AugmentParams(Section):
    """The ``audit.augment`` section; see AugmentSpec for what each value does."""

    hflip_p: Annotated[float, Field(ge=0.0, le=1.0)]
    vflip_p: Annotated[float, Field(ge=0.0, le=1.0)]
    affine_p: Annotated[float, Field(ge=0.0, le=1.0)]
    rotate_deg: Annotated[float, Field(ge=0.0, le=45.0)]
    scale: Annotated[float, Field(ge=0.0, le=0.5)]
    translate: Annotated[float, Field(ge=0.0, le=0.3)]
    intensity_p: Annotated[float, Field(ge=0.0, le=1.0)]
    brightness: Annotated[float, Field(ge=0.0, le=0.5)]
    contrast: Annotated[float, Field(ge=0.0, le=0.5)]
    gamma: Annotated[float, Field(ge=0.0, le=0.9)]


class AuditParams(Section):
    """The ``audit`` section of params.yaml."""

    arms: Annotated[list[str], Field(min_length=1)]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    ratios: Annotated[list[Annotated[float, Field(gt=0.0, le=100.0)]], Field(min_length=1)]
    minority: Literal["minority", "all_below_majority"]
    oversample_to: Literal["majority", "ratio"]
    synthetic_to: Literal["ratio", "majority"]  # gan arms: r * n_k, or fill up to the largest
    verdict_metric: Literal["minority_recall", "balanced_accuracy", "macro_f1", "auroc"]
    n_boot: Annotated[int, Field(ge=100, le=100_000)]
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)]
    bootstrap_seed: Annotated[int, Field(ge=0)]
    augment: AugmentParams

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        for name in arms:
            kind, _, run = name.partition(":")
            if kind not in ARM_KINDS + GAN_ARM_KINDS or (kind in GAN_ARM_KINDS) != bool(run):
                valid = [*ARM_KINDS, *(f"{k}:<run>" for k in GAN_ARM_KINDS)]
                raise ValueError(f"unknown arm {name!r}; expected one of {valid}")
        if "real" not in arms:
            raise ValueError(f"expected 'real' among the arms, got {arms}; it is the baseline")
        if len(set(arms)) != len(arms):
            raise ValueError(f"expected distinct arms, got {arms}")
        return arms

    @model_validator(mode="after")
    def _distinct_seeds(self) -> AuditParams:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"expected distinct seeds, got {self.seeds}")
        return self


class GanEvalParams(Section):
    """The ``evaluate_gan:`` section of params.yaml."""

    samples_per_class: Annotated[int, Field(ge=10, le=100_000)]
    backbone: Literal["domain", "inception"]
    k: Annotated[int, Field(ge=1, le=50)]
    bootstrap: Annotated[int, Field(ge=10, le=10_000)]
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)]
    kid_subset_size: Annotated[int, Field(ge=2)]
    kid_subsets: Annotated[int, Field(ge=1, le=1000)]
    memorisation_quantile: Annotated[float, Field(gt=0.0, lt=0.5)]
    batch_size: Annotated[int, Field(ge=1, le=4096)]


class RuntimeParams(Section):
    prefer_gpu: Flag
    cpu_threads: Annotated[int, Field(ge=0, le=256)]


class Params(Section):
    seed: Annotated[int, Field(ge=0)]
    runtime: RuntimeParams
    data: DataParams
    gan: GanParams
    synth: SynthParams
    classifier: ClassifierParams
    evaluate_gan: GanEvalParams
    audit: AuditParams
    constraints: list[ConstraintSpec]

    @field_validator("constraints", mode="before")
    @classmethod
    def _known_constraints(cls, specs: Any) -> Any:
        # Name the valid constraints before pydantic's union error, and reject repeats.
        names = [s.get("name") for s in specs if isinstance(s, dict)] if isinstance(
            specs, list
        ) else []
        for name in names:
            if name not in CONSTRAINT_NAMES:
                raise ValueError(
                    f"unknown constraint {name!r}; expected one of {list(CONSTRAINT_NAMES)}"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"each constraint may appear once, got {names}")
        return specs

    @model_validator(mode="after")
    def _constrained_runs_have_constraints(self) -> Params:
        constrained = [name for name, run in self.gan.runs.items() if run.constraints]
        if constrained and not any(c.weight > 0 for c in self.constraints):
            raise ValueError(
                f"gan.runs {constrained} set constraints: true but the constraints section "
                f"has no entry with weight > 0; add one or set constraints: false"
            )
        return self

    @model_validator(mode="after")
    def _arms_name_known_runs(self) -> Params:
        for arm in self.audit.arms:
            _, _, run = arm.partition(":")
            if run and run not in self.gan.runs:
                raise ValueError(
                    f"audit.arms: arm {arm!r} names GAN run {run!r}, which gan.runs does not "
                    f"define; expected one of {sorted(self.gan.runs)}"
                )
        return self


def _format_error(err: dict[str, Any]) -> str:
    # Drop pydantic's union tag from the path (constraints.0.support.settings -> ...0.settings).
    loc = [p for p in err["loc"] if p not in CONSTRAINT_NAMES]
    key = ".".join(str(part) for part in loc) or "<root>"
    if err["type"] == "missing":
        return f"{key}: missing; add it to params.yaml"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key (value {err['input']!r}); remove it or fix its spelling"
    msg = err["msg"].removeprefix("Value error, ")
    if isinstance(err["input"], (dict, list)):
        return f"{key}: {msg}"  # a whole section: its text would bury the message
    return f"{key}: {msg} (got {err['input']!r})"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (YAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def params_from_dict(raw: Any, origin: str = "params") -> Params:
    """Validate a parsed params mapping; raise ``ParamsError`` naming every bad dotted key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_format_error(err) for err in exc.errors()]
        raise ParamsError(f"invalid {origin}:\n  " + "\n  ".join(lines)) from None


def load_params(path: str | Path) -> Params:
    """Read and validate a params YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}; pass --params with an existing file")
    try:
        with path.open() as fh:
            raw = yaml.load(fh, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ParamsError(f"invalid {path}: not valid YAML: {exc}") from None
    return params_from_dict(raw, origin=str(path))
