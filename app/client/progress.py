"""A job's epochs on the terminal: a live rich progress bar, or plain lines in a log.

Each epoch event (the server's history entry: ``epoch``, ``loss``, ``accuracy`` or
``mae``/``r2``, the same with ``val_``, ``learning_rate``, ``seconds``,
``samples_per_second``) moves the display. The ETA is the epochs left times the time an
epoch takes: as the events arrived over the last :data:`ETA_WINDOW_SECONDS` (what the wait
really is: checkpoints, progress writes and a busy machine included), or, until events have
come in for :data:`ETA_MIN_SPAN_SECONDS` (a replayed history arrives all at once), the
mean training time of the last :data:`ETA_EPOCHS` epochs as the worker measured it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

ETA_EPOCHS = 5
ETA_WINDOW_SECONDS = 30.0
ETA_MIN_SPAN_SECONDS = 2.0
BURST_SECONDS = 0.05  # events closer than this came together: they count as one arrival
LOG_SECONDS = 10.0  # a plain line at most this often (and for the last epoch)

# History keys shown, in order, and their short names; val_<key> follows each.
SHOWN = {"loss": "loss", "accuracy": "acc", "mae": "mae", "r2": "r2"}


def metrics_text(entry: Mapping[str, float]) -> str:
    """``loss 0.3121 acc 0.91 val_loss 0.3342 val_acc 0.9``: training, then validation."""
    parts = [
        f"{prefix}{short} {entry[prefix + key]:.4g}"
        for prefix in ("", "val_")
        for key, short in SHOWN.items()
        if prefix + key in entry
    ]
    return " ".join(parts)


class EpochStats:
    """What the display shows besides the metrics: samples/s and the ETA."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.epoch = 0
        self._seconds: deque[float] = deque(maxlen=ETA_EPOCHS)
        self._arrivals: deque[tuple[float, int]] = deque()  # (monotonic time, epoch)
        self.speed = ""
        self.eta = ""

    def add(self, entry: Mapping[str, float], now: float | None = None) -> None:
        """Count the epoch ``entry``, which arrived at ``now`` (default: time.monotonic())."""
        now = time.monotonic() if now is None else now
        self.epoch = int(entry["epoch"])
        if "seconds" in entry:
            self._seconds.append(float(entry["seconds"]))
        if "samples_per_second" in entry:
            self.speed = f"{entry['samples_per_second']:,.0f} samples/s"
        if self._arrivals and now - self._arrivals[-1][0] < BURST_SECONDS:
            self._arrivals[-1] = (now, self.epoch)  # one burst: the server's poll sent them
        else:
            self._arrivals.append((now, self.epoch))
        while len(self._arrivals) > 2 and now - self._arrivals[1][0] >= ETA_WINDOW_SECONDS:
            self._arrivals.popleft()
        per_epoch = self._seconds_per_epoch(now)
        if per_epoch is not None:
            left = max(self.epochs - self.epoch, 0) * per_epoch
            self.eta = f"ETA {timedelta(seconds=round(left))}"

    def _seconds_per_epoch(self, now: float) -> float | None:
        since, first_epoch = self._arrivals[0]
        if now - since >= ETA_MIN_SPAN_SECONDS and self.epoch > first_epoch:
            return (now - since) / (self.epoch - first_epoch)
        return sum(self._seconds) / len(self._seconds) if self._seconds else None


class LiveBar:
    """A rich progress bar on a terminal: ``epoch ━━━━  12/200  loss ...  samples/s  ETA``."""

    def __init__(self, console: Console, *, epochs: int) -> None:
        self.stats = EpochStats(epochs)
        self._progress = Progress(
            TextColumn("epoch"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("{task.fields[eta]}"),
            console=console,
        )
        self._task: TaskID = self._progress.add_task(
            "train", total=epochs, metrics="waiting for the first epoch", speed="", eta=""
        )

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def epoch(self, entry: Mapping[str, float]) -> None:
        self.stats.add(entry)
        self._progress.update(
            self._task,
            completed=self.stats.epoch,
            metrics=metrics_text(entry),
            speed=self.stats.speed,
            eta=self.stats.eta,
        )


class LogLines:
    """Without a terminal (a log file, CI): one plain line every :data:`LOG_SECONDS`, and
    one for the last epoch seen."""

    def __init__(self, console: Console, *, epochs: int) -> None:
        self.stats = EpochStats(epochs)
        self._console = console
        self._latest: Mapping[str, float] | None = None
        self._printed_at: float | None = None
        self._printed_epoch = 0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        if self._latest is not None and self._printed_epoch != self.stats.epoch:
            self._print(self._latest)

    def epoch(self, entry: Mapping[str, float]) -> None:
        self.stats.add(entry)
        self._latest = entry
        now = time.monotonic()
        due = self._printed_at is None or now - self._printed_at >= LOG_SECONDS
        if due or self.stats.epoch >= self.stats.epochs:
            self._print(entry)
            self._printed_at = now

    def _print(self, entry: Mapping[str, float]) -> None:
        stats = self.stats
        parts = [f"epoch {stats.epoch}/{stats.epochs}", metrics_text(entry), stats.speed, stats.eta]
        line = "  ".join(p for p in parts if p)
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        self._printed_epoch = stats.epoch


def epoch_display(console: Console, *, epochs: int) -> LiveBar | LogLines:
    """A live bar on a terminal, plain lines anywhere else."""
    if console.is_interactive:  # a terminal that is not TERM=dumb (or TTY_INTERACTIVE=1)
        return LiveBar(console, epochs=epochs)
    return LogLines(console, epochs=epochs)
