"""Batch restoration: plan outputs, skip finished ones, restore the rest one scan at a time.

The engine behind ``durr denoise``; the command only parses arguments and prints.

Planning
--------
``plan(inputs, outdir)`` turns the named inputs into one ``Job`` per scan. A file lands at
``outdir/<file name>``; a folder is walked with ``durr.io.find_scans`` and mirrored under
``outdir/<folder name>/<rel>`` (a DICOM series is written as a folder of the source's file
names). Unreadable files, missing inputs and clashing outputs become jobs with a ``problem``,
so the batch reports them and goes on.

Completion and resume
---------------------
An output is *complete* when its record ``outdir/.durr/done/<output>.json`` exists, names the
same settings (model, modality, stopping) and the same input files (names, sizes, mtimes),
and the output's SHA-256 equals the one recorded. A scan is written as follows, so that a kill
at any moment leaves either nothing, or a complete output and its record:

1. restore; ``save_scan`` to a hidden staging name beside the output (itself atomic);
2. hash the staged output and write the record (atomically);
3. move the staged output onto the output name (``os.replace``; an older output folder is
   renamed aside first and deleted after).

A kill between 2 and 3 leaves a record whose hash matches no output: the scan is redone, as
it never finished. Hidden leftovers of killed runs (staging names, ``durr.io`` temporaries)
are removed when the scan is next processed. ``overwrite=True`` redoes every scan.

Memory
------
Scans are processed one at a time (load, restore in batches of slices, save, drop), so memory
is set by the largest scan, not by the number of scans. Models are loaded once each
(``ModelCache``).

Ranks
-----
``denoise`` runs alone or as one rank of ``torchrun``: rank 0 plans and broadcasts the job
list, rank ``r`` does jobs ``r, r + W, r + 2W, ...`` (each exactly once), and rank 0 gathers
the rows and writes the report (see ``durr.infer.distributed``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence, TextIO

import numpy as np

from durr.errors import ModelError, ScanError
from durr.infer.distributed import World
from durr.io import ClippedValuesWarning, ScanSource, find_scans, save_scan
from durr.io.atomic import atomic_file, fsync_dir

STATE_DIR = ".durr"          # under the output folder: completion records
RECORD_VERSION = 1
STATUSES = ("restored", "skipped", "failed")
_STAGE = "durr-stage"
_ASIDE = "durr-aside"


# --------------------------------------------------------------------------- settings and jobs


@dataclass(frozen=True)
class Settings:
    """How to restore every scan of a batch.

    model : a model name under ``models/`` or a model folder; None picks one per scan from
        its modality (``DEFAULT_MODEL_FOR_MODALITY``).
    modality : "CT", "MR" or "OT" for scans whose format carries none (NIfTI, PNG, TIFF, NPY)
        or whose DICOM Modality is neither CT nor MR; None reads them as "OT".
    mode, steps, max_steps : the stopping rule (``"policy"`` or ``"sure"`` with an optional
        cap, or ``"fixed"`` with ``steps``), as in ``durr.infer.restore_scan``.
    batch_size, device : how slices are pushed through the model (no effect on the result).
    overwrite : redo scans whose output is complete.
    """

    model: str | None = None
    modality: str | None = None
    mode: str = "policy"
    steps: int | None = None
    max_steps: int | None = None
    batch_size: int = 8
    device: str = "auto"
    overwrite: bool = False

    def fingerprint(self) -> dict:
        """The settings that change an output (recorded, and compared on resume)."""
        model = self.model
        if model is not None and Path(model).is_dir():
            model = str(Path(model).resolve())
        return {"model": model, "modality": self.modality, "mode": self.mode, "steps": self.steps,
                "max_steps": self.max_steps}


@dataclass(frozen=True)
class Job:
    """One scan to restore.

    index : position in the plan (the order of the report; ranks take every W-th).
    input : the scan's file, or its series folder (or the named input if nothing was found).
    output : where the restored scan goes (a folder for a DICOM series).
    source : the ``find_scans`` item, None when the input could not be listed.
    problem : why this job cannot be done, known at planning time.
    """

    index: int
    input: Path
    output: Path
    source: ScanSource | None = None
    problem: str | None = None


@dataclass
class Row:
    """One line of the report."""

    input: str
    output: str
    status: str = "failed"          # restored | skipped | failed
    modality: str = ""
    model: str = ""
    slices: int = 0
    steps_mean: float | None = None
    steps_min: int | None = None
    steps_max: int | None = None
    at_limit: int = 0               # slices the policy ran to the step limit (it found no point to stop)
    above_seen: int = 0             # slices noisier than the model's training range (run scaled down to it)
    seconds: float = 0.0
    clipped: int = 0                # values clipped to the stored bit depth on writing
    error: str = ""
    rank: int = 0


COLUMNS = tuple(f.name for f in fields(Row))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _clash(output: Path, source: ScanSource) -> str | None:
    """A reason if writing ``output`` would replace, or write inside, one of the inputs."""
    out = output.resolve()
    for src in (source.path, *source.files):
        src = Path(src).resolve()
        if _inside(out, src) or _inside(src, out):
            return f"its output {output} would overwrite the input; choose another output folder"
    return None


def plan(inputs: Sequence[str | os.PathLike], outdir: str | os.PathLike) -> list[Job]:
    """One ``Job`` per scan found in ``inputs``, with its output path under ``outdir``.

    Raises
    ------
    ScanError : ``outdir`` lies inside an input folder (a rerun would take the outputs for
        inputs).
    """
    outdir = Path(outdir)
    jobs: list[Job] = []
    taken: dict[Path, Path] = {}

    def add(path: Path, output: Path | None, source: ScanSource | None, problem: str | None) -> None:
        if output is not None and problem is None and source is not None:
            problem = _clash(output, source)
            key = output.resolve()
            if problem is None and key in taken:
                problem = f"its output {output} is also the output of {taken[key]}; rename one input"
            taken.setdefault(key, path)
        jobs.append(Job(len(jobs), path, output if output is not None else outdir, source, problem))

    for given in inputs:
        path = Path(given)
        if not path.exists():
            add(path, None, None, "no such file or folder")
            continue
        if path.is_dir():
            if _inside(outdir.resolve(), path.resolve()):
                raise ScanError(outdir, f"the output folder is inside the input folder {path}; "
                                        "choose an output folder outside it")
            base = outdir / path.resolve().name
            items = find_scans(path)
            if not items:
                add(path, None, None, "no files found in this folder")
            for item in items:
                add(item.path, base / item.rel, item, item.problem)
        else:
            for item in find_scans(path):
                add(item.path, outdir / path.name, item, item.problem)
    return jobs


# --------------------------------------------------------------------------- completion records


def record_path(outdir: Path, output: Path) -> Path:
    return outdir / STATE_DIR / "done" / (output.relative_to(outdir).as_posix() + ".json")


def input_fingerprint(source: ScanSource) -> list:
    """(name, size, mtime_ns) of every input file: a changed input is restored again."""
    files = source.files or (source.path,)
    out = []
    for f in files:
        st = Path(f).stat()
        out.append([Path(f).name, st.st_size, st.st_mtime_ns])
    return out


def output_digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def completed(job: Job, settings: Settings, outdir: Path) -> Row | None:
    """The recorded row if ``job.output`` is complete for these settings and this input, else None."""
    if job.source is None or not job.output.exists():
        return None
    try:
        record = json.loads(record_path(outdir, job.output).read_text())
        if (record.get("version") != RECORD_VERSION or record.get("settings") != settings.fingerprint()
                or record.get("input") != input_fingerprint(job.source)):
            return None
        if record.get("sha256") != output_digest(job.output):
            return None
        return Row(**{k: v for k, v in record["row"].items() if k in COLUMNS})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_record(outdir: Path, job: Job, settings: Settings, row: Row, digest: str) -> None:
    record = {"version": RECORD_VERSION, "settings": settings.fingerprint(),
              "input": input_fingerprint(job.source), "sha256": digest, "row": asdict(row)}
    with atomic_file(record_path(outdir, job.output)) as f:
        f.write(json.dumps(record, indent=1).encode())


# --------------------------------------------------------------------------- staging and publishing


def _hex8() -> str:
    return uuid.uuid4().hex[:8]


def _leftover_pattern(name: str) -> re.Pattern:
    """Hidden names a killed run can leave beside ``name``: our staging / aside names, and
    ``durr.io.atomic`` temporaries of the output or of its staging name."""
    ours = rf"\.durr-(?:stage|aside)-[0-9a-f]{{8}}-{re.escape(name)}"
    theirs = rf"\.{re.escape(name)}\.durr-(?:tmp|old)-[0-9a-f]{{8}}"
    staged_tmp = rf"\.\.durr-stage-[0-9a-f]{{8}}-{re.escape(name)}\.durr-(?:tmp|old)-[0-9a-f]{{8}}"
    return re.compile(rf"^(?:{ours}|{theirs}|{staged_tmp})$")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(output: Path) -> int:
    """Delete what killed runs left beside ``output``; returns how many entries were removed."""
    if not output.parent.is_dir():
        return 0
    pattern = _leftover_pattern(output.name)
    gone = 0
    for entry in output.parent.iterdir():
        if pattern.match(entry.name):
            _remove(entry)
            gone += 1
    return gone


def publish(staged: Path, output: Path) -> None:
    """Move a finished ``staged`` output onto ``output`` in one rename.

    A file replaces a file atomically. Anything else in the way (an older series folder) is
    renamed aside first and deleted after, so ``output`` is never a mixture of old and new.
    """
    aside = None
    if output.exists() or output.is_symlink():
        if output.is_dir() or staged.is_dir():
            aside = output.with_name(f".{_ASIDE}-{_hex8()}-{output.name}")
            os.replace(output, aside)
    os.replace(staged, output)
    fsync_dir(output.parent)
    if aside is not None:
        _remove(aside)


# --------------------------------------------------------------------------- restoring one scan


class ModelCache:
    """Load each model once: the one named, or the default for each modality met."""

    def __init__(self, model: str | None = None):
        self.model = model
        self._models: dict[str, object] = {}
        self._errors: dict[str, ModelError] = {}
        self.loads = 0

    def name_for(self, modality: str) -> str:
        if self.model is not None:
            return self.model
        from durr.infer import DEFAULT_MODEL_FOR_MODALITY

        return DEFAULT_MODEL_FOR_MODALITY[modality]

    def get(self, modality: str):
        """(model name, DURR) for a scan of ``modality``; ``ModelError`` if it cannot be loaded."""
        name = self.name_for(modality)
        return name, self.load(name)

    def load(self, name: str):
        """The model ``name`` (a name under ``models/`` or a folder), loaded on first use."""
        from durr.infer import load_model

        if name in self._errors:
            raise self._errors[name]
        if name not in self._models:
            try:
                self._models[name] = load_model(name)
                self.loads += 1
            except ModelError as err:
                self._errors[name] = err
                raise
        return self._models[name]


def _modality_override(source: ScanSource, wanted: str | None) -> str | None:
    """``wanted`` for formats without a modality; DICOM keeps its own CT/MR."""
    if wanted is None or source.format not in ("dicom", "dicom-series"):
        return wanted
    from durr.io.dicom import read_dataset

    first = source.files[0] if source.files else source.path
    own = str(read_dataset(Path(first), header_only=True).get("Modality", "") or "").upper()
    return None if own in ("CT", "MR") else wanted


def estimate_slices(source: ScanSource | None) -> int:
    """Slices a scan will have, from its headers (for the progress bar's total; 1 if unsure)."""
    if source is None or not source.ok:
        return 0
    try:
        if source.format == "dicom-series":
            return len(source.files)
        if source.format == "dicom":
            from durr.io.dicom import read_dataset

            return int(read_dataset(Path(source.path), header_only=True).get("NumberOfFrames", 1) or 1)
        if source.format == "nifti":
            import nibabel as nib

            shape = nib.load(str(source.path)).shape
            return int(shape[2]) if len(shape) >= 3 else 1
        if source.format == "npy":
            arr = np.load(source.path, mmap_mode="r")
            return int(arr.shape[0]) if arr.ndim == 3 else 1
    except Exception:
        return 1
    return 1


_CLIPPED = re.compile(r"(\d+) of \d+ values fall outside")


def _reason(err: BaseException, job: Job, staged: Path | None) -> str:
    """One line for the report: the problem, naming a file only when it is not the input itself."""
    if isinstance(err, ScanError):
        text = err.problem if err.path == str(job.input) else str(err)
    elif isinstance(err, ModelError):
        text = f"model: {err}"
    else:
        text = f"unexpected {type(err).__name__}: {err}"
    if staged is not None:
        text = text.replace(str(staged), str(job.output))
    return (text.strip().splitlines() or [type(err).__name__])[0]


def restore_job(job: Job, settings: Settings, models: ModelCache, outdir: Path, rank: int = 0,
                progress: Callable[[int], None] | None = None) -> Row:
    """Restore one scan and publish its output (see the module docstring); never raises for
    a problem with the scan: the row carries ``status="failed"`` and the reason."""
    from durr.infer import restore_scan

    row = Row(str(job.input), str(job.output), rank=rank)
    t0 = time.perf_counter()
    staged = None
    try:
        if job.problem is not None:
            raise ScanError(job.input, job.problem)
        clean_leftovers(job.output)
        scan = job.source.load(modality=_modality_override(job.source, settings.modality))
        row.modality = scan.modality
        row.model, model = models.get(scan.modality)
        restored, info = restore_scan(scan, model, mode=settings.mode, steps=settings.steps,
                                      max_steps=settings.max_steps, batch_size=settings.batch_size,
                                      device=settings.device, progress=progress)
        steps = np.asarray(info.steps)
        row.slices = int(steps.size)
        row.steps_mean = round(float(steps.mean()), 3)
        row.steps_min, row.steps_max = int(steps.min()), int(steps.max())
        if settings.mode == "policy":
            row.at_limit = int((steps >= (settings.max_steps or model.config.max_steps)).sum())
        if info.level_scale is not None:
            row.above_seen = int((info.level_scale < 1).sum())
        staged = job.output.with_name(f".{_STAGE}-{_hex8()}-{job.output.name}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ClippedValuesWarning)
            save_scan(restored, staged, like=scan, clip=True)
        del scan, restored                     # stream: nothing of this scan outlives it
        for w in caught:
            if issubclass(w.category, ClippedValuesWarning):
                found = _CLIPPED.search(str(w.message))
                row.clipped += int(found.group(1)) if found else 1
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        row.status = "restored"
        row.seconds = round(time.perf_counter() - t0, 4)
        _write_record(outdir, job, settings, row, output_digest(staged))
        publish(staged, job.output)
        staged = None
    except Exception as err:  # one scan's failure is reported; the batch goes on
        row.status, row.error = "failed", _reason(err, job, staged)
        row.seconds = round(time.perf_counter() - t0, 4)
        if staged is not None:
            _remove(staged)
    return row


# --------------------------------------------------------------------------- a rank's share


class _Log:
    """Per-scan lines (stdout) and failure lines (stderr) that do not break the progress bar."""

    def __init__(self, prefix: str, out: TextIO, err: TextIO):
        self.prefix, self.out, self.err = prefix, out, err

    def line(self, text: str, error: bool = False) -> None:
        from tqdm import tqdm

        tqdm.write(self.prefix + text, file=self.err if error else self.out)
        (self.err if error else self.out).flush()


def _describe(row: Row) -> str:
    if row.status == "failed":
        return f"durr denoise: failed: {row.input}: {row.error}"
    steps = (f"steps {row.steps_mean:g} [{row.steps_min}-{row.steps_max}]"
             if row.steps_mean is not None else "steps -")
    notes = f", {row.clipped} values clipped" if row.clipped else ""
    if row.at_limit:
        notes += f", {row.at_limit} slice{'s' if row.at_limit != 1 else ''} at the step limit"
    if row.above_seen:
        notes += f", {row.above_seen} slice{'s' if row.above_seen != 1 else ''} noisier than the training range"
    what = "skipped (complete)" if row.status == "skipped" else "restored"
    slices = f"{row.slices} slice{'s' if row.slices != 1 else ''}"
    return f"{what}: {row.input} -> {row.output} ({slices}, {steps}, {row.model}, {row.seconds:.2f} s{notes})"


def run_shard(jobs: Sequence[Job], settings: Settings, outdir: Path, *, rank: int = 0,
              prefix: str = "", progress: bool | None = None, out: TextIO | None = None,
              err: TextIO | None = None, models: ModelCache | None = None) -> list[Row]:
    """Do ``jobs`` in order: skip complete outputs, restore the rest; one row per job.

    progress : show a tqdm bar over slices (ETA) and scans; None shows it on a terminal only.
    """
    from tqdm import tqdm

    out, err = out or sys.stdout, err or sys.stderr
    log = _Log(prefix, out, err)
    models = models or ModelCache(settings.model)
    rows: dict[int, Row] = {}
    todo = []
    for job in jobs:
        done = None if settings.overwrite or job.problem else completed(job, settings, outdir)
        if done is not None:
            done.status, done.rank, done.input, done.output = "skipped", rank, str(job.input), str(job.output)
            rows[job.index] = done
            log.line(_describe(done))
        else:
            todo.append(job)
    estimates = [estimate_slices(job.source) if job.problem is None else 0 for job in todo]
    disable = None if progress is None else not progress
    with tqdm(total=sum(estimates), unit="slice", disable=disable, file=err, dynamic_ncols=True,
              desc=f"{prefix}scans 0/{len(todo)}") as bar:
        for k, (job, estimate) in enumerate(zip(todo, estimates)):
            before = bar.n
            row = restore_job(job, settings, models, outdir, rank, progress=bar.update)
            bar.total += (bar.n - before) - estimate      # the estimate, replaced by the truth
            bar.set_description(f"{prefix}scans {k + 1}/{len(todo)}")
            rows[job.index] = row
            log.line(_describe(row), error=row.status == "failed")
    return [rows[job.index] for job in jobs]


# --------------------------------------------------------------------------- reports


def summary(rows: Sequence[Row], report: Path | None = None, modality_given: bool = False) -> str:
    """The closing lines: counts, notes, then every failed scan with its reason.

    modality_given : ``--modality`` was set; otherwise scans read as "other" get a hint.
    """
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    text = [f"durr denoise: {len(rows)} scan{'s' if len(rows) != 1 else ''}: {counts['restored']} restored, "
            f"{counts['skipped']} skipped (output already complete), {counts['failed']} failed"]
    restored = [r for r in rows if r.status == "restored"]
    notes = (
        (lambda r: r.clipped, "had values clipped to the stored bit depth (column 'clipped' of the report)"),
        (lambda r: r.at_limit, "had slices the policy ran to the step limit (column 'at_limit'): it found no "
                               "point to stop, so the scan may be clean or unlike the model's training data; "
                               "check those outputs, or give --steps N"),
        (lambda r: r.modality == "OT" and not modality_given,
         "were read as 'other' (OT) and restored with the model for other images: NIfTI, PNG, TIFF and NPY "
         "files carry no modality; for MR or CT scans give --modality mr or --modality ct"),
        (lambda r: r.above_seen, "had slices noisier than the model's training range (column 'above_seen'): they "
                                 "ran scaled down to its heaviest seen level (durr.control.level_scale); restoration "
                                 "there is an extrapolation, check those outputs"),
    )
    for applies, message in notes:
        count = sum(1 for r in restored if applies(r))
        if count:
            text.append(f"  {count} restored scan(s) {message}")
    if counts["failed"]:
        text.append("failed scans:")
        text += [f"  {r.input}: {r.error}" for r in rows if r.status == "failed"]
    if report is not None:
        text.append(f"report: {report}")
    return "\n".join(text)


def write_report(rows: Sequence[Row], path: str | os.PathLike) -> Path:
    """Write the rows as CSV (``.csv``) or JSON (``.json``), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
        data = buf.getvalue()
    elif suffix == ".json":
        counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
        data = json.dumps({"summary": {"scans": len(rows), **counts},
                           "scans": [asdict(r) for r in rows]}, indent=1) + "\n"
    else:
        raise ValueError(f"report {path}: the name must end in .csv or .json")
    with atomic_file(path) as f:
        f.write(data.encode())
    return path


def read_report(path: str | os.PathLike) -> list[dict]:
    """The rows of a report written by ``write_report`` (CSV values come back as strings)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return json.loads(path.read_text())["scans"]
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- the whole batch


@dataclass
class BatchResult:
    rows: list[Row]        # every scan's row on rank 0 (this rank's own elsewhere)
    failed: bool           # any scan failed, on any rank
    report: Path | None = None


def denoise(inputs: Sequence[str | os.PathLike], outdir: str | os.PathLike, settings: Settings,
            report: str | os.PathLike | None = None, world: World | None = None,
            progress: bool | None = None, out: TextIO | None = None, err: TextIO | None = None,
            announce: bool = True) -> BatchResult:
    """Restore every scan of ``inputs`` into ``outdir``; alone or as one rank of torchrun.

    Parameters
    ----------
    inputs : files and folders (see ``plan``).
    outdir : the output folder (created).
    settings : see ``Settings``; ``settings.device`` "auto"/"cuda" becomes this rank's GPU.
    report : a ``.csv`` or ``.json`` path written by rank 0 at the end, or None.
    world : the ranks (default: from ``RANK``/``WORLD_SIZE``).
    progress : the tqdm bar (rank 0 only); None shows it on a terminal.
    out, err : where per-scan lines and failure lines go (default stdout, stderr).
    announce : print the summary (``summary``) on rank 0 at the end.

    Returns
    -------
    BatchResult; on ranks other than 0, ``rows`` holds only that rank's rows.

    Raises
    ------
    ScanError : the plan is impossible as a whole (``outdir`` inside an input folder), on every rank.
    ModelError : ``settings.model`` names a model that cannot be loaded (before any scan).
    """
    world = world or World.from_env()
    models = ModelCache(settings.model)
    if settings.model is not None:
        models.load(settings.model)
    outdir = Path(outdir)
    prefix = f"[rank {world.rank}] " if world.distributed else ""
    with world.session():
        if world.rank == 0:
            try:
                planned: object = plan(inputs, outdir)
            except ScanError as e:
                planned = ("error", e.path, e.problem)   # every rank raises it
        else:
            planned = None
        planned = world.broadcast(planned)
        if isinstance(planned, tuple):
            raise ScanError(planned[1], planned[2])
        outdir.mkdir(parents=True, exist_ok=True)
        local = Settings(**{**asdict(settings), "device": world.device(settings.device)})
        show = progress if progress is not None else (None if world.rank == 0 else False)
        mine = run_shard(world.shard(planned), local, outdir, rank=world.rank, prefix=prefix,
                         progress=show, out=out, err=err, models=models)
        gathered = world.gather([(job.index, row) for job, row in zip(world.shard(planned), mine)])
        written = None
        if world.rank == 0:
            rows = [row for _, row in sorted((pair for part in gathered for pair in part), key=lambda p: p[0])]
            failed = any(r.status == "failed" for r in rows)
            # before the last collective: under torchrun, a rank that exits early (status 1)
            # makes the launcher stop the others, so rank 0 reports while they still wait
            written = write_report(rows, report) if report is not None else None
            if announce:
                print(summary(rows, written, modality_given=settings.modality is not None), file=out or sys.stdout,
                      flush=True)
        else:
            rows, failed = mine, False
        failed = bool(world.broadcast(failed))
    return BatchResult(rows, failed, written)

