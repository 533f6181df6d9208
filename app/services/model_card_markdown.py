"""The model card as Markdown: ``GET /v1/models/{id}/card``, the same facts as the
``card`` object of ``GET /v1/models/{id}`` (:mod:`app.services.model_card`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from app.services.model_card import CardMetrics, EvaluationSummary, ModelCard

MEDIA_TYPE = "text/markdown; charset=utf-8"


def _code(text: str) -> str:
    """Markdown inline code."""
    return "`" + text.replace("`", "'") + "`"


def _value(value: Any) -> str:
    """A label, name or option value as inline code, in JSON: "1" (a string) and 1 (a
    number) stay apart."""
    return _code(json.dumps(value, ensure_ascii=False))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _flatten(options: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """("optimizer.learning_rate", 0.01), ... for nested option objects."""
    for key, value in options.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _architecture(card: ModelCard) -> list[str]:
    network = card.architecture
    sizes = [str(network["input_size"])] + [str(layer["units"]) for layer in network["layers"]]
    lines = [
        "## Architecture",
        "",
        f"A dense network {'-'.join(sizes)} ({card.parameter_count:,} parameters), "
        f"loss `{network['loss']}`, task `{card.task}`; inputs are "
        f"{'standardised' if card.standardize else 'used as they are'}.",
        "",
        "| Layer | Units | Activation |",
        "|---|---|---|",
    ]
    for index, layer in enumerate(network["layers"], start=1):
        lines.append(f"| {index} | {layer['units']} | `{layer['activation']}` |")
    if card.classes is not None:
        lines += ["", "Classes, in output order: " + ", ".join(_value(c) for c in card.classes)]
    return [*lines, ""]


def _why_no_data(card: ModelCard) -> str:
    """A job's model lost its dataset to a delete; one no job holds may predate the
    models' own record of it (migration 0012); an imported one never had one."""
    if card.lineage.job_id is not None:
        return "its dataset has been deleted"
    if card.lineage.trained_here:
        return "the dataset is gone, or was not recorded with this model"
    return "the model was imported"


def _no_job(card: ModelCard) -> str:
    trained = card.lineage.trained_here
    return "none (trained here; no job holds it now)" if trained else "none (imported)"


def _data(card: ModelCard) -> list[str]:
    data = card.training_data
    lines = ["## Training data", ""]
    if data is None:
        return [*lines, f"Not recorded: {_why_no_data(card)}.", ""]
    lines += [
        f"- Dataset: {_cell(data.name)} (`{data.dataset_id}`)",
        f"- Content hash (SHA-256): `{data.sha256}`",
        f"- Shape: {data.n_samples:,} rows x {data.n_features} features, "
        f"{data.n_targets} target(s) ({data.label_kind})",
    ]
    if data.feature_names:
        lines.append("- Features: " + ", ".join(_value(name) for name in data.feature_names))
    if data.class_balance:
        lines += ["", "| Class | Rows | Share |", "|---|---|---|"]
        for item in data.class_balance:
            lines.append(f"| {_cell(_value(item.label))} | {item.count:,} | {item.fraction:.1%} |")
    return [*lines, ""]


def _options(options: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Training options", ""]
    if options is None:
        return [*lines, "None: the model was not trained by a job here.", ""]
    lines += ["| Option | Value |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(_value(value))} |" for name, value in _flatten(options)]
    return [*lines, ""]


def _metrics(metrics: CardMetrics) -> list[str]:
    lines = ["## Metrics", ""]
    rows = [("Final (last epoch)", metrics.final)]
    if metrics.best is not None:
        rows.append((f"Best (lowest {metrics.best_by})", metrics.best))
    names = list(dict.fromkeys(k for _, entry in rows if entry for k in entry))
    if not names:
        return [*lines, "None recorded.", ""]
    lines += ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, entry in rows:
        cells = [_number((entry or {}).get(name)) for name in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if metrics.weights_epoch is not None:
        lines += ["", f"The model holds the weights of epoch {metrics.weights_epoch}."]
    return [*lines, ""]


def _evaluations(evaluations: list[EvaluationSummary]) -> list[str]:
    lines = ["## Evaluations", ""]
    if not evaluations:
        return [*lines, "None yet.", ""]
    names = list(dict.fromkeys(name for e in evaluations for name in e.scores))
    lines += [
        "| Evaluation | Dataset | Rows | " + " | ".join(names) + " |",
        "|---|---|---:|" + "---:|" * len(names),
    ]
    for e in evaluations:
        cells = [_number(e.scores.get(name)) for name in names]
        dataset = _or_none(e.dataset_id, "deleted")
        lines.append(
            f"| {_code(e.evaluation_id)} | {dataset} | {e.n_samples} | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _or_none(value: str | None, none: str = "none") -> str:
    return none if value is None else _code(value)


def _sweep(sweep_id: str | None, trial_index: int | None) -> str:
    """``none``, or the sweep's id and the trial that trained the model."""
    if sweep_id is None:
        return "none"
    return f"{_code(sweep_id)}, trial {trial_index}"


def render(card: ModelCard) -> str:
    """The card as a Markdown document."""
    lineage = card.lineage
    lines = [
        f"# Model card: {card.model_id}",
        "",
        f"Made {card.created_at.isoformat()} by Backprop {card.backprop_version}.",
        "",
        *_architecture(card),
        *_data(card),
        *_options(card.training_options),
        *_metrics(card.metrics),
        *_evaluations(card.evaluations),
        "## Lineage",
        "",
        f"- Training job: {_or_none(lineage.job_id, _no_job(card))}",
        f"- Initial model: {_or_none(lineage.initial_model_id)}",
        f"- Sweep: {_sweep(lineage.sweep_id, lineage.trial_index)}",
        "",
    ]
    return "\n".join(lines)
