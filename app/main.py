"""The DURR web app: upload a CT or MR scan, restore it, watch the restoration unfold, download it.

Run ``durr app`` (loopback, upload limit, headless) or ``streamlit run app/main.py``.

This script is only the page: reading uploads (``app.uploads``), the work over ``durr.infer``
(``app.compute``), the download (``app.export``) and the pictures (``app.views``) are plain
functions tested without streamlit. Everything expensive is cached with ``st.cache_resource``,
keyed on the SHA-256 of the uploaded bytes and the settings, so moving a slider never recomputes
a restoration. Cached objects are shared between sessions and must be treated as read-only.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/ on the path, not the checkout
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402

from app import compute, export, uploads, views  # noqa: E402
from durr.errors import ModelError, ScanError  # noqa: E402

log = logging.getLogger("durr.app")
MODALITY_CHOICES = ["from the file", "CT", "MR", "OT"]
SOURCES = ["Upload", "Bundled sample"]
MODES = ["Restore", "Study"]
TTL = 3600  # seconds a cached result is kept


# --------------------------------------------------------------------------- cached work
# Arguments starting with "_" are not hashed: the key is carried by the string arguments.


@st.cache_resource(max_entries=4, show_spinner="Loading the model...")
def cached_model(key: str, folder: str):
    from durr.infer import load_model

    return load_model(folder)


@st.cache_resource(max_entries=4, ttl=TTL, show_spinner="Reading the scan...")
def cached_upload(key: str, modality: str | None, _files: list[tuple[str, bytes]], _limits: uploads.Limits):
    """(Loaded, None) or (None, message): failures are cached too, so a bad upload is read once."""
    try:
        return uploads.read_upload(_files, modality, _limits), None
    except uploads.UploadError as err:
        return None, str(err)


@st.cache_resource(max_entries=8, ttl=TTL, show_spinner="Reading the sample...")
def cached_sample(label: str, modality: str | None):
    try:
        return uploads.load_sample(label, modality), None
    except uploads.UploadError as err:
        return None, str(err)


@st.cache_resource(max_entries=4, ttl=TTL, show_spinner="Restoring...")
def cached_restore(scan_key: str, model_key: str, _scan, _model) -> compute.Restoration:
    return compute.restore(_scan, _model)


@st.cache_resource(max_entries=16, ttl=TTL, show_spinner="Recording the trajectory of this slice...")
def cached_trajectory(scan_key: str, model_key: str, index: int, _result, _scan, _model) -> compute.Trajectory:
    return compute.slice_trajectory(_result, _scan, _model, index)


@st.cache_resource(max_entries=4, ttl=TTL, show_spinner="Writing the download...")
def cached_download(scan_key: str, model_key: str, _result, _loaded) -> export.Download:
    return export.export_scan(_result.restored, _loaded.scan, _loaded.base_name)


@st.cache_resource(max_entries=16, ttl=TTL, show_spinner="Degrading and restoring (policy and oracle stop)...")
def cached_study(scan_key: str, model_key: str, index: int, family: str, level: float, seed: int,
                 _clean: np.ndarray, _modality: str, _spacing: float, _model) -> compute.Study:
    return compute.study(_clean, _modality, _spacing, _model, family, level, seed)


# --------------------------------------------------------------------------- page parts


def upload_digest(uploaded) -> tuple[list[tuple[str, bytes]], str]:
    """The upload as (name, bytes) pairs and its SHA-256, hashed once per upload (not per rerun)."""
    files = [(f.name, f.getvalue()) for f in uploaded]
    ids = tuple(getattr(f, "file_id", f.name) for f in uploaded)
    memo = st.session_state.setdefault("_upload_digest", {})
    if ids not in memo:
        memo.clear()
        memo[ids] = uploads.digest(files)
    return files, memo[ids]


def choose_scan(source: str, modality: str | None, limits: uploads.Limits):
    """The scan to work on and its cache key, or (None, None) after showing why there is none."""
    if source == "Bundled sample":
        label = st.selectbox("Sample scan", list(uploads.SAMPLES), key="sample")
        loaded, error = cached_sample(label, modality)
        key = f"sample:{label}|{modality}"
    else:
        uploaded = st.file_uploader(
            "Upload a scan: one DICOM file, the DICOM files of one series, a zip of a series, "
            "NIfTI (.nii, .nii.gz), PNG or TIFF",
            accept_multiple_files=True, key="upload", max_upload_size=max(1, int(np.ceil(limits.max_mb))),
            help=f"Up to {limits.max_mb:g} MB per upload. Files are read in a temporary folder that is "
                 "removed at once; nothing is kept on disk.")
        if not uploaded:
            st.info("Upload a scan, or pick **Bundled sample** in the sidebar to try the app.")
            return None, None
        files, digest = upload_digest(uploaded)
        loaded, error = cached_upload(f"{digest}|{modality}|{limits}", modality, files, limits)
        key = f"upload:{digest}|{modality}"
    if error:
        st.error(error, icon=":material/error:")
        return None, None
    return loaded, key


def display_window(scan, image: np.ndarray) -> tuple[float, float]:
    """Window controls for the scan's modality (CT presets; percentile window otherwise)."""
    if scan.modality == "CT":
        preset = st.sidebar.radio("CT window", list(views.CT_WINDOWS), key="ct_window", horizontal=True)
        return views.ct_window(preset)
    low, high = st.sidebar.slider("Percentile window", 0.0, 100.0, views.DEFAULT_PERCENTILES, step=0.5,
                                  key="percentiles", help="display range between two percentiles of the slice")
    return views.percentile_window(image, low, high)


def show_images(images: list[tuple[np.ndarray, str]], window: tuple[float, float]) -> None:
    for column, (image, caption) in zip(st.columns(len(images)), images):
        column.image(views.to_uint8(image, window), caption=caption, width="stretch")


def load_model_for(scan, folder: str):
    """(model, key) or (None, None) after explaining why there is no model."""
    try:
        path = compute.find_model(scan.modality, folder.strip() or None)
        key = compute.model_key(path)
        model = cached_model(key, str(path))
    except ModelError as err:
        st.error(str(err), icon=":material/error:")
        return None, None
    config = model.config
    if config.modality != scan.modality:
        st.warning(f"This model was trained for {config.modality} ({config.family}); the scan is "
                   f"{scan.modality}. Results may be poor.")
    st.sidebar.caption(f"Model: `{path.name}` ({config.family}, {config.rule} rule, at most {config.max_steps} steps)")
    return model, key


def restore_page(loaded, scan_key: str, model, model_key: str, index: int, image: np.ndarray,
                 window: tuple[float, float], unit: str) -> None:
    scan = loaded.scan
    wanted = (scan_key, model_key)
    if st.button("Restore", type="primary", key="restore"):
        st.session_state["restored_for"] = wanted
    if st.session_state.get("restored_for") != wanted:
        show_images([(image, "original")], window)
        return
    result = cached_restore(scan_key, model_key, scan, model)
    restored = compute.stack(result.restored.array, result.axis)[index]
    steps = int(result.steps[index])
    cols = st.columns(3)
    cols[0].metric("Steps chosen by the policy", steps, help="terminal time of this slice")
    if len(result.steps) > 1:
        cols[1].metric("Mean steps over the slices", f"{float(np.mean(result.steps)):.1f}",
                       help=f"{len(result.steps)} slices, from {int(result.steps.min())} to {int(result.steps.max())}")
    cols[2].metric("Restoration time", f"{result.seconds:.2f} s")
    at_limit = int((result.steps >= model.config.max_steps).sum())
    if at_limit:
        st.warning(f"The policy ran {at_limit} of {len(result.steps)} slice(s) to the step limit "
                   f"({model.config.max_steps} steps): it found no point to stop, so the scan may be clean or "
                   "unlike the model's training data. Compare with the original before using the result.")
    heavier = 0 if result.level_scale is None else int((result.level_scale < 1).sum())
    if heavier:
        st.info(f"{heavier} of {len(result.steps)} slice(s) are noisier than this model's training range: they ran "
                "scaled down to its heaviest seen noise level (level scale) and the result was scaled back. This "
                "is an extrapolation; compare with the original before using the result.")
    diff = restored - image
    diff_view, half = views.difference_view(diff, floor=1e-3 * (window[1] - window[0]))
    columns = st.columns(3)
    columns[0].image(views.to_uint8(image, window), caption="original", width="stretch")
    columns[1].image(views.to_uint8(restored, window), caption=f"restored ({views.steps_text(steps)})", width="stretch")
    columns[2].image(diff_view, caption=f"difference restored - original (grey 0, black/white -/+{half:.3g}{unit})",
                     width="stretch")

    st.subheader("How the restoration unfolded")
    trajectory = cached_trajectory(scan_key, model_key, index, result, scan, model)
    left, right = st.columns([1, 2])
    with left:
        if trajectory.steps > 0:
            n = st.slider("Step", 0, trajectory.steps, trajectory.steps, key=f"step|{index}|{hash(wanted)}",
                          help="the estimate after n steps; step 0 is the input")
        else:
            n = 0
            st.caption("The policy stopped at step 0: the input is returned unchanged.")
        st.image(views.to_uint8(trajectory.frames[n], window), caption=f"estimate at step {n} of {trajectory.steps}",
                 width="stretch")
    with right:
        st.pyplot(views.stop_probability_figure(trajectory.stop_prob, trajectory.steps), clear_figure=False)
        st.caption("The policy stops at the first step whose stop probability exceeds the threshold.")

    try:
        download = cached_download(scan_key, model_key, result, loaded)
    except ScanError as err:
        st.error(f"The restored scan cannot be written in its original format: {err.problem}")
        return
    st.download_button(f"Download the restored scan ({download.file_name})", download.data,
                       file_name=download.file_name, mime=download.mime, key="download", type="primary",
                       on_click="ignore")
    for note in download.notes:
        st.caption(note)


def study_page(loaded, scan_key: str, model, model_key: str, index: int, image: np.ndarray,
               window: tuple[float, float]) -> None:
    scan = loaded.scan
    try:
        from durr.degrade import get_degradation

        families = compute.families_for(scan.modality)
    except ImportError as err:
        st.error(f"Study mode needs durr.degrade and durr.metrics, which this installation lacks ({err}).")
        return
    if not families:
        st.error(f"No degradation family applies to {scan.modality} images.")
        return
    st.caption(f"The scan (slice {index}) is taken as the clean image; it is degraded, restored with the "
               "policy's stop and with the oracle stop (the best step in hindsight, using the clean image), "
               "and both are scored against the clean image.")
    c1, c2, c3 = st.columns([1, 2, 1])
    family = c1.selectbox("Degradation family", families, key="family")
    deg = get_degradation(family)
    choices = compute.level_choices(deg.seen, deg.unseen, grid=deg.level_grid)
    unseen = [float(v) for v in deg.unseen]
    level = c2.select_slider(
        "Level", options=choices, value=unseen[0] if unseen else choices[len(choices) // 2], key=f"level|{family}",
        format_func=lambda v: views.format_level(family, v, compute.is_seen(v, deg.seen)),
        help=f"{deg.level_unit}. Seen (training) range {deg.seen[0]:g} to {deg.seen[1]:g}; the slider "
             "reaches the unseen levels beyond it.")
    seed = int(c3.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="seed"))
    if family == "ct-lowdose":
        st.caption("Simulating a low-dose CT (720 views, Poisson counts, filtered back-projection) takes from "
                   "seconds to minutes on a CPU, growing with the slice size; results are cached.")
    wanted = (scan_key, model_key, index, family, float(level), seed)
    if st.button("Degrade and restore", type="primary", key="study"):
        st.session_state["studied_for"] = wanted
    if st.session_state.get("studied_for") != wanted:
        show_images([(image, "clean")], window)
        return
    result = cached_study(scan_key, model_key, index, family, float(level), seed, image, scan.modality,
                          float(scan.spacing[-1]), model)
    s = result.scores
    show_images([(result.degraded, f"degraded, {views.format_level(family, level, result.seen)}"),
                 (result.policy, f"policy stop ({views.steps_text(result.policy_steps)})"),
                 (result.oracle, f"oracle stop ({views.steps_text(result.oracle_steps)})"),
                 (result.reference, "clean reference")], window)
    rows = [{"": name, "steps": steps, "PSNR (dB)": f"{s[key]['psnr']:.2f}", "SSIM": f"{s[key]['ssim']:.4f}"}
            for name, key, steps in (("degraded", "degraded", "0 (input)"),
                                     ("DURR, policy stop", "policy", str(result.policy_steps)),
                                     ("DURR, oracle stop", "oracle", str(result.oracle_steps)))]
    left, right = st.columns(2)
    left.table(rows)
    left.caption(f"PSNR and SSIM against the clean reference, as PROTOCOL.md section 4 defines them for "
                 f"{scan.modality}; restoring with both stops took {result.seconds:.2f} s.")
    right.pyplot(views.stop_probability_figure(result.stop_prob, result.policy_steps, result.oracle_steps),
                 clear_figure=False)


def page() -> None:
    limits = uploads.Limits.from_env()
    with st.sidebar:
        st.header("Scan")
        source = st.radio("Source", SOURCES, key="source", horizontal=True)
        choice = st.selectbox("Modality", MODALITY_CHOICES, key="modality",
                              help="NIfTI, PNG and TIFF do not record it; DICOM does")
        modality = None if choice == MODALITY_CHOICES[0] else choice
        st.header("Model")
        folder = st.text_input("Model folder (optional)", key="model_folder",
                               help="a folder written by durr train; empty: the shipped model for the modality")
        mode = st.radio("Mode", MODES, key="mode", horizontal=True,
                        help="Restore: restore the scan as it is. Study: degrade a clean scan at a chosen level "
                             "and compare the policy's stop with the oracle's.")
        st.header("Display")
    st.title("DURR: CT and MR restoration")
    st.caption("A recurrent restorer applied step by step, and a learned policy that decides when to stop.")

    loaded, scan_key = choose_scan(source, modality, limits)
    if loaded is None:
        return
    scan = loaded.scan
    st.caption(f"**{loaded.label}**: {views.summary(scan)}")
    for note in loaded.notes:
        st.caption(note)
    axis = compute.view_axis(scan)
    slices = compute.stack(scan.array, axis)
    index = 0
    if slices.shape[0] > 1:
        index = st.sidebar.slider("Slice", 0, slices.shape[0] - 1, slices.shape[0] // 2, key=f"slice|{scan_key}")
    image = slices[index]
    window = display_window(scan, image)
    unit = " HU" if scan.modality == "CT" else ""

    model, model_key = load_model_for(scan, folder)
    if model is None:
        show_images([(image, "original")], window)
        return
    if mode == "Study":
        study_page(loaded, scan_key, model, model_key, index, image, window)
    else:
        restore_page(loaded, scan_key, model, model_key, index, image, window, unit)


def main() -> None:
    st.set_page_config(page_title="DURR: CT and MR restoration", layout="wide")
    try:
        page()
    except Exception as err:  # never a traceback in the page; the log has it
        log.exception("app failure")
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        st.error(f"Something went wrong ({type(err).__name__}: {text[:300]}). The server log has the details.")


main()
