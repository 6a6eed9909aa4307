"""The model card of a model adapted on a user's own scans (``durr train policy|restorer --data``)."""

from __future__ import annotations

from pathlib import Path


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def write_user_card(folder: Path, summary: dict, heldout_table: str) -> Path:
    """Write ``folder/MODEL_CARD.md`` from ``train_on_user_data``'s summary and its held-out table."""
    u = summary["user_training"]
    data, secs, cfg = u["data"], u["seconds"], u["config"]
    s2 = cfg["stage2"]
    what = ("the stopping policy only (restorer frozen, as in the base model)" if u["what"] == "policy"
            else f"the restorer (fine-tuned {cfg['stage1']['iterations']} iterations from the base model) "
                 "and then the stopping policy")
    lines = [
        f"# DURR model `{Path(folder).name}`",
        "",
        f"Adapted from the base model `{u['base_model']}` to the degradation `{u['degradation']}` "
        f"({u['modality']}) by retraining {what}.",
        "",
        "## Training data and levels",
        "",
        f"- Levels seen in training: {u['seen'][0]:g} to {u['seen'][1]:g} (drawn uniformly in severity); "
        "the held-out table below also scores levels outside that range, never used in training.",
        f"- Data: the user's folder `{data['folder']}`, split by scan (volume) with seed {cfg['seed']}:",
        f"  - train: {data['train']['slices']} slices of {len(data['train']['volumes'])} scans: "
        f"{_listing(data['train']['volumes'])}",
        f"  - held out: {data['heldout']['slices']} slices of {len(data['heldout']['volumes'])} scans: "
        f"{_listing(data['heldout']['volumes'])}",
        f"  - skipped: {len(data['skipped'])} ("
        + ("; ".join(f"`{s['scan']}`: {s['reason']}" for s in data["skipped"][:10]) or "none") + ")",
        f"- Degradation bank: {cfg['bank_per_slice']} realisations per training slice.",
        "",
        "## Training",
        "",
        f"- Stage 2 (REINFORCE): {s2['episodes']} rollouts of {s2['patch']}x{s2['patch']} crops to "
        f"{s2['horizon']} steps, {s2['reinforce']['iterations']} iterations, step cost "
        f"{s2['reinforce']['step_cost']:g} dB.",
        f"- Policy features: {', '.join(u['policy_features'])}"
        + (" (chosen among " + "; ".join(
            f"[{', '.join(c['features'])}] {c['rehearsal_return']:.2f} dB" for c in u["feature_selection"])
           + f" by a rehearsal: trained on the lighter two thirds of the seen range, scored on the heaviest "
             f"third, oracle {u['feature_selection'][0]['rehearsal_oracle']:.2f} dB)." if u["feature_selection"]
           else "."),
        f"- Fixed step count (best mean PSNR on the seen-level training rollouts): {summary['fixed_steps']}.",
        f"- Time: degradation bank {secs['bank'] / 60:.1f} min, stage 1 {secs['stage1'] / 60:.1f} min, "
        f"stage 2 {secs['stage2'] / 60:.1f} min (training {secs['training_total'] / 60:.1f} min in all), "
        f"held-out scoring {secs['heldout_evaluation'] / 60:.1f} min, on {u['device']} x {u['ranks']} rank(s), "
        f"{u['threads']} threads, torch {u['torch']}.",
        "",
        "Reproduce:",
        "",
        "```",
        u["command"] or "(command not recorded)",
        "```",
        "",
        "## Held-out split",
        "",
        "PSNR (dB, PROTOCOL.md section 4) / mean steps on the held-out scans. The oracle stops at "
        "each slice's best step using the clean image: an upper bound, not a method.",
        "",
        heldout_table.strip(),
    ]
    if u.get("shortfalls"):
        lines += ["", "**Warning.** On the held-out scans the new policy scores below another rule at "
                  + "; ".join(f"level {b['level']:g} ({b['deficit_db']:.2f} dB below {b['method']})"
                              for b in u["shortfalls"])
                  + ". At those levels the base model, or a fixed step count (`--steps`), may serve better."]
    path = Path(folder) / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path
