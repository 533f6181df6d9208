"""Trials trained together: several small networks of one shape, on the same data, the
same batches in the same order, stepped in lockstep with one NumPy call per operation
for all of them instead of one per network.

A sweep's trials often differ in nothing but a learning rate (or the initial weights):
their batches are the same rows, their arrays the same shapes. On a small network a step
is bound by the number of NumPy calls, not by arithmetic (``network``), so k such trials
stacked along a leading axis cost far less than k separate steps (BENCHMARKS.md §9).

Each trial keeps its own ``Trainer`` (network, optimizer, epoch loop, progress, best
weights, history): the pack holds the stacked copies of what a step changes — the
parameters, the optimizer's state, the epoch's logits — and copies them back into the
trials at every epoch's end, so that each trial's own ``EpochLoop`` computes its metrics,
its best weights and early stopping, and its checkpoints exactly as when it trains
alone. The arithmetic is the solo step's, operation for operation: every matrix product
is a ``matmul`` over the stack, which calls BLAS once per trial with the shapes and
layout the solo step uses, and the rest is elementwise. A trial trained in a pack ends
with the same weights, bit for bit, as trained alone (``tests/engine/test_pack.py``).

Trials pack when ``pack_key`` is equal and not None: same architecture, dtype, data
(the same prepared ``TrainingData`` object), batch size, shuffling and seed, optimizer
kind and its hyperparameters other than the learning rate, L2, position (epoch, batch,
optimizer step); without per-layer statistics (``diagnostics``) or clipping, and up to
PACK_MAX_PARAMETERS parameters (larger networks are GEMM-bound: nothing to gain). They
may differ in learning rate, schedule, epochs, initial weights and early stopping.

A trial leaves the pack when it is done (its epochs, its pause epoch, early stopping),
diverges (its result is the DivergenceError it would have raised alone) or is told to
stop (its ``should_stop``); the others go on without it.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import activations, losses, optimizers, subnormals
from app.engine.errors import EngineError
from app.engine.loop import CHECK_EVERY, EpochLoop
from app.engine.network import aligned_zeros
from app.engine.training import Trainer, TrainingResult

Array = npt.NDArray[np.floating[Any]]
PACK_MAX_PARAMETERS = 65_536  # beyond this a step is bound by its matrix products
# The optimizers whose step the pack computes over stacked parameters (``_Update``).
SUPPORTED_OPTIMIZERS = ("sgd", "momentum", "adam")


def pack_key(trainer: Trainer) -> tuple[Any, ...] | None:
    """What trials must share to train in one pack; None when this one cannot."""
    loop, options, network = trainer.loop, trainer.options, trainer.network
    if options.diagnostics or options.clip_norm is not None:
        return None
    if (
        network.params.size > PACK_MAX_PARAMETERS
        or options.optimizer.name not in SUPPORTED_OPTIMIZERS
    ):
        return None
    fused = losses.LOSSES[network.loss].fused_activation == network.activations[-1]
    if not fused and network.activations[-1] == "softmax":
        return None  # its derivative reduces over rows of 2-D arrays only
    o = options.optimizer
    counters, _ = loop.optimizer.state()
    progress = loop.progress
    return (
        network.input_size,
        tuple(network.layer_sizes),
        tuple(network.activations),
        network.loss,
        network.dtype.str,
        id(trainer.data),
        options.batch_size,
        options.shuffle,
        options.seed,
        loop.epoch_rows.rule,
        o.name,
        o.momentum,
        o.nesterov,
        o.beta1,
        o.beta2,
        o.epsilon,
        options.l2,
        progress.epoch,
        progress.batches_done,
        tuple(sorted(counters.items())),
    )


def packs(trainers: Sequence[Trainer]) -> list[list[int]]:
    """The trainers' indexes grouped into packs (in order of first appearance); a trainer
    that cannot pack is a pack of one."""
    groups: dict[Any, list[int]] = {}
    alone: list[list[int]] = []
    for i, trainer in enumerate(trainers):
        key = pack_key(trainer)
        if key is None:
            alone.append([i])
        else:
            groups.setdefault(key, []).append(i)
    return sorted([*groups.values(), *alone], key=lambda group: group[0])


@dataclass
class Member:
    """One trial of a pack: its trainer and its callbacks (``Trainer.run``'s)."""

    trainer: Trainer
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    should_stop: Callable[[], bool] | None = None


# What a member's training ended with: its result, or the error it raised (an
# EngineError; anything else raised for it alone, by its epoch's end or its ``on_epoch``).
Outcome = TrainingResult | Exception
# The members that leave at one point (an epoch's end, a divergence check), together:
# (i, outcome) for each member i, so that their endings can be written at once.
OnLeave = Callable[[list[tuple[int, Outcome]]], None]


class _Stack:
    """The stacked arrays of the members' step: parameters, gradients, optimizer state,
    the epoch's logits and the per-batch-size workspaces (leading axis: member)."""

    def __init__(self, loops: list[EpochLoop]) -> None:
        first = loops[0]
        network = first.network
        self.k = k = len(loops)
        self.dtype = dtype = network.dtype
        self.sizes = sizes = network.layer_sizes
        size = network.params.size
        self.params = np.stack([loop.network.params for loop in loops])
        self.grads = np.zeros_like(self.params)
        self.weight_count = network.weight_count
        fan_in = [network.input_size, *sizes[:-1]]
        self.w: list[Array] = []
        self.dw: list[Array] = []
        offset = 0
        for n, n_prev in zip(sizes, fan_in, strict=True):
            self.w.append(self.params[:, offset : offset + n * n_prev].reshape(k, n, n_prev))
            self.dw.append(self.grads[:, offset : offset + n * n_prev].reshape(k, n, n_prev))
            offset += n * n_prev
        self.b: list[Array] = []
        self.db: list[Array] = []
        for n in sizes:
            self.b.append(self.params[:, offset : offset + n].reshape(k, 1, n))
            self.db.append(self.grads[:, offset : offset + n])
            offset += n
        assert offset == size
        self.w_t = [w.transpose(0, 2, 1) for w in self.w]
        self.forward_fns = [activations.ACTIVATIONS[a] for a in network.activations]
        self.derivatives = [activations.DERIVATIVES[a] for a in network.activations]
        self.loss = losses.LOSSES[network.loss]
        self.fused = self.loss.fused_activation == network.activations[-1]
        self.softmax = network.activations[-1] == "softmax"
        # The epoch's logits so far (a stack made anew in mid-epoch keeps its members').
        self.logits = np.stack([loop.logits for loop in loops])
        self._workspaces: dict[int, tuple[Any, ...]] = {}
        self._ones_out = np.ones(sizes[-1], dtype=dtype)

    def workspace(self, m: int) -> tuple[Any, ...]:
        """(a[l], delta[l], delta[l]ᵀ, dA[l], ones (m,), delta scale) for m-row batches."""
        work = self._workspaces.get(m)
        if work is None:
            k, dtype = self.k, self.dtype
            block = aligned_zeros(k * m * sum(self.sizes), dtype)
            a, start = [], 0
            for n in self.sizes:
                a.append(block[start : start + k * m * n].reshape(k, m, n))
                start += k * m * n
            delta = [np.empty((k, m, n), dtype=dtype) for n in self.sizes]
            work = (
                a,
                delta,
                [d.transpose(0, 2, 1) for d in delta],
                [np.empty((k, m, n), dtype=dtype) for n in self.sizes],
                np.ones(m, dtype=dtype),
                np.array(self.loss.delta_scale(m, self.sizes[-1]), dtype=dtype),
            )
            self._workspaces[m] = work
        return work

    def output(self, z: Array, out: Array) -> None:
        """a[L] = g(z[L]) for every member; softmax row by row as ``activations.softmax``
        computes it (the row sums are one matrix-vector product per member, as there)."""
        k, m, n = z.shape
        if not self.softmax or m == 1:  # one row: softmax's scalar path, member by member
            for j in range(k if self.softmax else 0):
                self.forward_fns[-1](z[j], out[j])
            if not self.softmax:
                self.forward_fns[-1](z, out)
            return
        top = activations.row_max(np.ascontiguousarray(z).reshape(k * m, n)).reshape(k, m, 1)
        np.subtract(z, top, out=out)
        np.exp(out, out=out)
        sums = np.matmul(out, self._ones_out)  # (k, m): one sgemv per member
        np.divide(out, sums.reshape(k, m, 1), out=out)

    def step(self, x: Array, y: Array, z_out: Array) -> None:
        """Forward and backward of every member on batch x (m, n[0]) with targets y
        (m, n[L]); z[L] into z_out (k, m, n[L]); gradients into ``grads``."""
        a, delta, delta_t, da, ones, scale = self.workspace(x.shape[0])
        last = len(self.sizes) - 1
        previous = x
        for i in range(last):
            z = np.matmul(previous, self.w_t[i], out=a[i])  # z[l] = a[l-1]·W[l]ᵀ
            np.add(z, self.b[i], out=z)
            self.forward_fns[i](z, z)
            previous = z
        z = np.matmul(previous, self.w_t[last], out=z_out)
        np.add(z, self.b[last], out=z)
        self.output(z, a[last])
        d = delta[last]
        if self.fused:
            np.subtract(a[last], y, out=d)  # dZ[L] = a[L] - y
            np.multiply(d, scale, out=d)
        else:
            np.subtract(a[last], y, out=da[last])
            np.multiply(da[last], scale, out=da[last])
            self.derivatives[last](a[last], da[last], d)
        for i in range(last, -1, -1):
            a_prev = x if i == 0 else a[i - 1]
            np.matmul(delta_t[i], a_prev, out=self.dw[i])  # dW[l] = dZ[l]ᵀ·A[l-1]
            np.matmul(ones, delta[i], out=self.db[i])  # db[l] = Σ_i dZ[l]_i
            if i > 0:
                np.matmul(delta[i], self.w[i], out=da[i - 1])  # dA[l-1] = dZ[l]·W[l]
                self.derivatives[i - 1](a[i - 1], da[i - 1], delta[i - 1])


class _Update:
    """The members' optimizer step over the stacked parameters: each member's learning
    rate as a column, the rest as ``optimizers`` computes it, elementwise."""

    def __init__(self, stack: _Stack, loops: list[EpochLoop]) -> None:
        self.stack, self.loops = stack, loops
        first = loops[0]
        self.optimizer = first.optimizer
        self.name = first.options.optimizer.name
        dtype = stack.dtype
        counters, _ = first.optimizer.state()
        self.t = int(counters.get("t", 0))
        self.state = {
            name: np.stack([loop.optimizer.state()[1][name] for loop in loops])
            for name in first.optimizer.state()[1]
        }
        self.rates = np.zeros((stack.k, 1), dtype=dtype)  # -lr (sgd, momentum) or -step (adam)
        self.l2 = np.array(first.options.l2, dtype=dtype)
        self.scratch = np.empty_like(stack.params)
        self.decay = np.empty((stack.k, stack.weight_count), dtype=dtype)
        opt = first.options.optimizer
        self.mu = np.array(opt.momentum, dtype=dtype)
        self.nesterov = opt.nesterov
        self.beta1, self.beta2, self.epsilon = opt.beta1, opt.beta2, opt.epsilon
        self.one_minus_b1 = np.array(1.0 - opt.beta1, dtype=dtype)
        self.one_minus_b2 = np.array(1.0 - opt.beta2, dtype=dtype)
        self.eps_hat = np.zeros((), dtype=dtype)

    def __call__(self) -> None:
        stack = self.stack
        p, g = stack.params, stack.grads
        if self.l2:
            w = p[:, : stack.weight_count]
            np.multiply(w, self.l2, out=self.decay)
            np.add(g[:, : stack.weight_count], self.decay, out=g[:, : stack.weight_count])
        if self.name == "adam":
            self.t += 1
            c1 = 1.0 - self.beta1**self.t
            c2 = math.sqrt(1.0 - self.beta2**self.t)
            for j, loop in enumerate(self.loops):  # as Adam.step rounds it, member by member
                self.rates[j, 0] = -loop.optimizer.learning_rate * c2 / c1
            self.eps_hat[...] = self.epsilon * c2
            m, v = self.state["m"], self.state["v"]
            optimizers.adam_pass(
                p,
                g,
                m,
                v,
                self.scratch,
                self.one_minus_b1,
                self.one_minus_b2,
                self.eps_hat,
                self.rates,
            )
        elif self.name == "sgd":
            optimizers.sgd_pass(p, g, self.rates)  # rates hold -lr
        else:
            optimizers.momentum_pass(
                p, g, self.state["velocity"], self.rates, self.mu, self.nesterov
            )

    def set_rates(self) -> None:
        """The members' learning rates of this epoch (sgd, momentum: -lr as stored)."""
        if self.name != "adam":
            for j, loop in enumerate(self.loops):
                self.rates[j, 0] = -loop.optimizer.learning_rate

    def copy_out(self, j: int, loop: EpochLoop) -> None:
        counters, arrays = loop.optimizer.state()
        for name, array in arrays.items():
            array[...] = self.state[name][j]
        if "t" in counters:
            loop.optimizer.load_state({"t": self.t}, arrays)


def _finished(loop: EpochLoop) -> bool:
    """Whether a member's run is over: its epochs (or pause epoch) done, or early stopped."""
    options = loop.options
    target = min(options.epochs, loop.stop_at or options.epochs)
    return loop.progress.epoch >= target or loop.progress.early_stopped


def _raised(error: Exception) -> Outcome:
    return error


class Pack:
    """Members trained in lockstep (see the module docstring); ``run`` trains them all
    and reports each one's outcome to ``on_leave`` as it leaves (those that leave at the
    same point in one call)."""

    def __init__(self, members: Sequence[Member]) -> None:
        keys = {pack_key(m.trainer) for m in members}
        if len(keys) != 1 or None in keys:
            raise ValueError("these trainers cannot train in one pack")
        self.members = list(members)
        first = self.members[0].trainer.loop
        for member in self.members[1:]:
            member.trainer.loop.share_rows(first)

    def run(self, on_leave: OnLeave) -> None:
        """Train until every member has left: ``on_leave([(i, outcome), ...])`` with the
        members that leave at one point."""
        active = list(range(len(self.members)))
        while active:
            active = self._run_stack(active, on_leave)

    def _run_stack(self, active: list[int], on_leave: OnLeave) -> list[int]:
        """Train the members ``active`` stacked until one leaves; the ones still going."""
        members = [self.members[i] for i in active]
        loops = [m.trainer.loop for m in members]
        if len(members) == 1:  # alone: the solo loop itself
            self._leave_solo(active[0], members[0], on_leave)
            return []
        stack = _Stack(loops)
        update = _Update(stack, loops)
        first = loops[0]
        while True:
            progress = first.progress
            finished = [(i, loop) for i, loop in zip(active, loops, strict=True) if _finished(loop)]
            if finished:
                ended = [(i, self._ended(i, stopped=False)) for i, _ in finished]
                return self._part(
                    active, loops, stack, update, on_leave, ended, progress.batches_done
                )
            first.epoch_rows.arrange(progress.epoch)  # the members' (``share_rows``)
            rates = [loop.start_epoch_rate() for loop in loops]
            update.set_rates()
            start, started = progress.batches_done, time.perf_counter()
            quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore")
            with subnormals.flushed(), quiet:
                done, stopper, diverged = self._steps(members, stack, update, start)
            elapsed = time.perf_counter() - started
            for j, loop in enumerate(loops):
                if j in diverged:  # alone, the epoch's progress is not counted either
                    continue
                loop.progress.epoch_seconds += elapsed
                loop.progress.samples_trained += loop.rows(done) - loop.rows(start)
                loop.progress.batches_done = done
            if diverged:
                reason = "the outputs or gradients became NaN or infinite"
                leaving: list[tuple[int, Callable[[], Outcome]]] = [
                    (active[j], functools.partial(loops[j]._diverged, reason)) for j in diverged
                ]
                return self._part(active, loops, stack, update, on_leave, leaving, done)
            if stopper is not None:
                stopping = [(active[stopper], self._ended(active[stopper], stopped=True))]
                return self._part(active, loops, stack, update, on_leave, stopping, done)
            self._copy_out(loops, stack, update, done)
            failed: list[tuple[int, Callable[[], Outcome]]] = []
            for i, member, loop, rate in zip(active, members, loops, rates, strict=True):
                try:
                    entry = self._end_epoch(loop, rate)
                    if member.on_epoch is not None:
                        member.on_epoch(dict(entry))
                except Exception as error:  # every member's epoch ends all the same
                    failed.append((i, functools.partial(_raised, error)))
            if failed:
                return self._part(active, loops, stack, update, on_leave, failed, done)

    def _steps(
        self, members: list[Member], stack: _Stack, update: _Update, start: int
    ) -> tuple[int, int | None, list[int]]:
        """The epoch's steps from batch ``start``: (batches done, the position of a member
        that asked to stop (else None), the positions of those whose outputs turned
        non-finite at the last check)."""
        first = members[0].trainer.loop
        fill = first._fill if first.epoch_rows.gathers else None
        asks = [(j, m.should_stop) for j, m in enumerate(members) if m.should_stop is not None]
        for index in range(start, len(first.batches)):
            for j, should_stop in asks:
                if should_stop():
                    return index, j, []
            x, y, _, _ = first.batches[index]
            if fill is not None:
                fill(index, x)
            z = stack.logits[:, first.spans[index]]
            stack.step(x, y, z)
            update()
            if index % CHECK_EVERY == CHECK_EVERY - 1:
                finite = np.isfinite(z).all(axis=(1, 2))
                if not finite.all():
                    return index + 1, None, np.flatnonzero(~finite).tolist()
        return len(first.batches), None, []

    @staticmethod
    def _copy_out(loops: list[EpochLoop], stack: _Stack, update: _Update, done: int) -> None:
        """The stacked state into each member's own arrays (its network, optimizer and
        the logits of the epoch's first ``done`` batches)."""
        rows = loops[0].rows(done)
        for j, loop in enumerate(loops):
            loop.network.params[...] = stack.params[j]
            update.copy_out(j, loop)
            loop.logits[:rows] = stack.logits[j, :rows]

    @staticmethod
    def _end_epoch(loop: EpochLoop, rate: float) -> dict[str, Any]:
        """The member's epoch end, as its own loop's ``run`` makes it."""
        with subnormals.flushed():
            return loop._end_epoch(rate)

    def _part(
        self,
        active: list[int],
        loops: list[EpochLoop],
        stack: _Stack,
        update: _Update,
        on_leave: OnLeave,
        leaving: list[tuple[int, Callable[[], Outcome]]],
        done: int,
    ) -> list[int]:
        """Members leave with their outcomes, made once every member's state is copied
        out (``done``: the epoch's batches done; the leavers' state is final, the others'
        is stacked anew); returns the others."""
        self._copy_out(loops, stack, update, done)
        outcomes: list[tuple[int, Outcome]] = []
        for i, outcome in leaving:
            try:
                result = outcome()
            except Exception as error:  # its own (finish_run's) trouble: its outcome
                result = error
            outcomes.append((i, result))
        on_leave(outcomes)
        gone = {i for i, _ in leaving}
        return [i for i in active if i not in gone]

    def _ended(self, i: int, *, stopped: bool) -> Callable[[], Outcome]:
        return functools.partial(self.members[i].trainer.finish_run, stopped=stopped)

    def _leave_solo(self, i: int, member: Member, on_leave: OnLeave) -> None:
        try:
            result = member.trainer.run(on_epoch=member.on_epoch, should_stop=member.should_stop)
        except EngineError as error:
            on_leave([(i, error)])
            return
        on_leave([(i, result)])
