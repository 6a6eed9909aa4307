"""Model cards: what a shipped model was trained on, how to reproduce it, how it scores."""

from __future__ import annotations

import csv
from pathlib import Path

from durr.data.corpus import DEFAULT_MANIFEST
from durr.data.sources import GROUP_OF_FAMILY


def _floor_sentence(floor: dict | None) -> str:
    if not floor:
        return ""
    a, b = floor["law"]
    verdict = "kept" if floor["kept"] else "left off"
    return (f" Step floor (`durr.control.step_floor`) fitted on the same rollouts: at least "
            f"floor(exp({a:.3f} + {b:.3f} log sigma_y)) steps, {verdict} ({floor['bank_psnr_floored']:.2f} dB on "
            f"them against {floor['bank_psnr_policy_alone']:.2f} for the policy alone).")


def _left_off(what: str, module: str, why: str) -> str:
    """The card's sentence for a stopping wrapper that stage 2 fitted and did not keep."""
    return f" {what} (`{module}`) tried on the same rollouts and left off: {why}."


def _ceiling_sentence(ceiling: dict | None) -> str:
    if not ceiling:
        return ""
    scores = ceiling["bank_psnr_by_factor"]
    if ceiling["factor"] is None:
        return _left_off("Step ceiling", "durr.control.step_ceiling",
                         f"no factor beat no ceiling there ({scores['no ceiling']:.2f} dB)")
    c = f"{ceiling['factor']:g}"
    return (f" Step ceiling (`durr.control.step_ceiling`): at most ceil({c} x exp({ceiling['law'][0]:.3f} + "
            f"{ceiling['law'][1]:.3f} log sigma_y)) steps, the factor {c} the best of {len(scores) - 1} on the same "
            f"rollouts ({scores[c]:.2f} dB against {scores['no ceiling']:.2f} without a ceiling).")


def _knee_sentence(knee: dict | None) -> str:
    if not knee:
        return ""
    if knee["knee_ratio"] is None:
        return _left_off("Knee guard", "durr.control.knee", "no ratio beat the policy alone")
    ratio, scores = f"{knee['knee_ratio']:g}", knee["bank_psnr_by_ratio"]
    return (f" Knee guard (`durr.control.knee`) fitted on the same rollouts: knee_ratio {ratio} ({scores[ratio]:.2f} dB "
            f"on them against {scores['policy alone']:.2f} for the policy alone).")


def _sources_phrase(sources: list[str] | None) -> str:
    if not sources:
        return "every train source above"
    return "train sources " + ", ".join(f"`{sid}`" for sid in sources) + " only"


def _cap_sentence(cap: dict | None) -> str:
    if not cap:
        return ""
    scores = cap["bank_psnr_by_cap"]
    if cap["moved_cap"] is None:
        return _left_off("Discrepancy cap", "durr.control.moved_cap",
                         f"it cost PSNR there ({scores['capped']:.2f} against {scores['no cap']:.2f} dB)")
    return (f" Discrepancy cap (`durr.control.moved_cap`): stop once rms(x_n - y) / sigma_y reaches "
            f"{cap['moved_cap']:g}, 1.5 x the largest value at a best step of the same rollouts "
            f"({scores['largest at best step']:.2f}); free there ({scores['capped']:.2f} dB with and without).")


def _level_scale_sentence(noise_ref: float | None) -> str:
    if noise_ref is None:
        return ""
    return (f" Level scale (`durr.control.level_scale`): an input whose noise level (working domain, Haar-MAD) "
            f"is above {noise_ref:g}, the median over the same rollouts' inputs in the heaviest fifth of the "
            "seen range, is scaled down to it before the dynamic runs and the result scaled back.")


def _manifest_rows(family: str, manifest: Path) -> list[dict]:
    group = GROUP_OF_FAMILY.get(family)
    with open(manifest, newline="") as f:
        return [r for r in csv.DictReader(f) if r["group"] == group]


def write_model_card(folder: Path, config: dict, benchmark_table: str | None = None,
                     notes: str | None = None, manifest: Path = DEFAULT_MANIFEST) -> Path:
    """Write ``folder/MODEL_CARD.md`` from the model's config.json contents (+ a benchmark table)."""
    from durr.degrade import get_degradation

    family = config["family"]
    deg = get_degradation(family)
    recipe, training = config["recipe"], config["training"]
    rows = _manifest_rows(family, manifest)
    train_rows = [r for r in rows if r["split"] == "train"]
    dev_rows = [r for r in rows if r["split"] == "dev"]
    s1, s2 = recipe["stage1"], recipe["stage2"]
    on_gpu = training.get("stage1_device", "").startswith("cuda")
    lines = [
        f"# DURR model `{folder.name}`",
        "",
        f"Restorer with a learned stopping time for the `{family}` degradation ({deg.modality}), "
        f"level unit: {deg.level_unit}.",
        "",
        "## Training data and levels",
        "",
        f"- Trained on the **seen** levels only: {family} in [{deg.seen[0]:g}, {deg.seen[1]:g}] "
        f"(sampled uniformly in noise standard deviation). Unseen levels {', '.join(f'{u:g}' for u in deg.unseen)} "
        "were never sampled by any training step.",
        f"- Train split of the corpus manifest (`datasets/manifest.csv`, group `{GROUP_OF_FAMILY[family]}`), "
        f"{sum(int(r['slices'] or 0) for r in train_rows)} slices:",
        *[f"  - `{r['source_id']}`: {r['package_or_generator']} `{r['file']}`, {r['slices']} slice(s), {r['note']}"
          for r in train_rows],
        f"- Dev split (evaluation only): {', '.join('`' + r['source_id'] + '`' for r in dev_rows)}.",
        "",
        "## Architecture",
        "",
        f"- Restoration unit: {recipe['model']['unit']['depth']} conv layers, {recipe['model']['unit']['channels']} "
        f"channels, bias={recipe['model']['unit']['bias']}, step rule `{recipe['model']['rule']}`, input "
        f"injection of the degraded scan; {training['parameters']['durr_unit']} parameters.",
        f"- Stopping policy: MLP on {training['parameters']['policy']} parameters over scale-free statistics of "
        "the state (" + ", ".join(f"`{name}`" for name in config["durr"]["policy"]["features"])
        + "; see `durr.control.features`); stops at the first step with probability > 0.5; "
        f"hard cap {recipe['model']['max_steps']} steps.",
        f"- Fixed-depth baseline (`fixed_cnn.safetensors`): {recipe['baseline']['depth']} layers x "
        f"{recipe['baseline']['channels']} channels, {training['parameters']['fixed_cnn']} parameters, "
        "same data, levels and iteration budget.",
        f"- Fixed step count (best mean PSNR on seen-level training rollouts): {config['fixed_steps']}.",
        "",
        "## Training",
        "",
        f"- Stage 1: {s1['iterations']} iterations, batch {s1['batch']} patches of {s1['patch']}x{s1['patch']}, "
        f"Adam lr {s1['lr']:g} cosine to {s1['lr_min']:g}, schedule {s1['n_min']}..{s1['n_max']} steps "
        f"(mildest..heaviest seen level), overshoot weight {s1['overshoot_weight']:g}, seed {s1['seed']}; "
        f"{_sources_phrase(s1.get('sources'))}"
        + (", each source drawn equally often" if s1.get("balance_sources") else "") + ".",
        "- Stage 2 (REINFORCE, restorer frozen): "
        + (f"rollouts of whole bank slices (at most {s2['episodes']})" if s2.get("whole_slices")
           else f"{s2['episodes']} rollouts of {s2['patch']}x{s2['patch']}")
        + (" of scans only (the textures and photographs of the training split left out)"
           if s2.get("scans_only") and not s2.get("sources") else f" of {_sources_phrase(s2.get('sources'))}")
        + (", each source drawn equally often," if s2.get("balance_sources") else "")
        + f" to {s2['horizon']} steps, {s2['reinforce']['iterations']} iterations, step cost "
        f"{s2['reinforce']['step_cost']:g} dB, entropy weight {s2['reinforce']['entropy_weight']:g}."
        + _floor_sentence(training.get("stage2_step_floor")) + _ceiling_sentence(training.get("stage2_step_ceiling"))
        + _knee_sentence(training.get("stage2_knee_guard"))
        + _cap_sentence(training.get("stage2_moved_cap"))
        + _level_scale_sentence(config["durr"].get("noise_ref")),
        f"- Time: stage 1 restorer {training['stage1_restorer_seconds'] / 60:.1f} min, fixed CNN "
        f"{training['stage1_fixed_cnn_seconds'] / 60:.1f} min"
        + (f" on {training['stage1_device']}; stage 2" if on_gpu else ", stage 2")
        + f" {training['stage2_seconds'] / 60:.1f} min "
        f"on {training['device']} ({training['threads']} threads, torch {training['torch']}, {training['machine']}).",
        "",
        "Reproduce (the stage-1 budget is a number of iterations, not a time; on a CUDA machine "
        "`durr train all` runs stage 1 there and stage 2 on the CPU):" if on_gpu else
        "Reproduce (the stage-1 budget is wall-clock independent; times above were measured on a shared, loaded CPU):",
        "",
        "```",
        "durr corpus build",
        f"durr train all --family {family} --out models/{folder.name} --threads {training['threads']}"
        + (f" --config models/{folder.name}/train.yaml" if (folder / "train.yaml").exists() else ""),
        "```",
    ]
    if on_gpu:
        lines += ["", "Or stage 1 on a GPU machine and stage 2 here: `scripts/gpu_train_models.sh` (docs/gpu.md)."]
    if notes:
        lines += ["", "## Limitations and notes", "", notes.strip()]
    if benchmark_table:
        lines += ["", "## Dev-split benchmark", "", benchmark_table.strip()]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m durr.train.card MODEL_DIR [--table TABLE.md] [--notes NOTES.md]``: rewrite a card."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Write MODEL_CARD.md of a model folder from its config.json")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--table", type=Path, help="dev-split benchmark table (durr benchmark's table.md)")
    parser.add_argument("--notes", type=Path, help="Markdown for the 'Limitations and notes' section")
    args = parser.parse_args(argv)
    config = json.loads((args.folder / "config.json").read_text())
    path = write_model_card(args.folder, config, args.table.read_text() if args.table else None,
                            args.notes.read_text() if args.notes else None)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
