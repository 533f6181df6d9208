"""Subnormal floats are flushed to zero while the epochs run, and only then."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.engine import activations, subnormals
from app.engine.network import Network
from app.engine.training import OptimizerOptions, Trainer, TrainingOptions

pytestmark = pytest.mark.skipif(
    not subnormals.available(), reason="flushing is implemented for x86-64 Linux only"
)

SOFTMAX_2 = {"units": 2, "activation": "softmax"}
TINY = np.float32(1e-20)  # TINY * TINY = 1e-40, a float32 subnormal
SUBNORMAL = np.full(4, 0x1000, dtype=np.uint32).view(np.float32)  # from bits: no arithmetic
SCALE = np.float32(2.0**30)  # SUBNORMAL * SCALE is a normal float (5.7e-42 * 1.07e9)


def flushes() -> bool:
    """Whether this thread flushes: a subnormal product (FTZ) and a subnormal operand
    (DAZ) come out as zero."""
    product = np.multiply(np.full(4, TINY), np.full(4, TINY))
    read = np.multiply(SUBNORMAL, SCALE)  # a normal result: only DAZ makes it 0
    ftz, daz = not product.any(), not read.any()
    assert ftz == daz, "FTZ and DAZ are set together"
    return ftz


def test_flushed_sets_and_restores_the_threads_mode() -> None:
    assert not flushes()
    with subnormals.flushed():
        assert flushes()
        with subnormals.flushed():  # nested: the outer setting survives the inner exit
            assert flushes()
        assert flushes()
    assert not flushes()


def test_flushed_puts_back_exactly_the_bits_it_found() -> None:
    """FTZ alone set before (DAZ off): after the region, FTZ alone again."""
    subnormals._set_flush_bits(0x8000)
    try:
        with subnormals.flushed():
            assert flushes()
        assert not np.multiply(np.full(4, TINY), np.full(4, TINY)).any()  # FTZ on
        assert np.multiply(SUBNORMAL, SCALE).all()  # DAZ off
    finally:
        subnormals._set_flush_bits(0)
    assert not flushes()


def test_flushed_restores_the_mode_after_an_exception() -> None:
    with pytest.raises(ZeroDivisionError), subnormals.flushed():
        raise ZeroDivisionError
    assert not flushes()


def test_only_the_calling_thread_flushes() -> None:
    """Another running thread keeps its own mode (one started inside would inherit it)."""
    asked, seen = threading.Event(), []

    def other() -> None:
        asked.wait(10)
        seen.append(flushes())

    thread = threading.Thread(target=other)
    thread.start()
    with subnormals.flushed():
        asked.set()
        thread.join()
        assert flushes()
    assert seen == [False]


def test_the_epochs_run_flushed_and_the_callbacks_do_not() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    network = Network(4, [{"units": 8, "activation": "relu"}, SOFTMAX_2])
    options = TrainingOptions(
        epochs=3, batch_size=16, optimizer=OptimizerOptions(name="adam"), seed=0
    )
    in_steps: list[bool] = []
    in_callback: list[bool] = []

    def should_stop() -> bool:  # asked before every batch, inside the epoch
        in_steps.append(flushes())
        return False

    Trainer(network, x, y, options).run(
        on_epoch=lambda entry: in_callback.append(flushes()), should_stop=should_stop
    )
    assert in_steps and all(in_steps)
    assert in_callback == [False, False, False]
    assert not flushes()


def test_a_confident_network_trains_to_the_same_weights_either_way() -> None:
    """Subnormals are far below a float32 weight's rounding: a run whose softmax makes
    them (a large learning rate makes it confident) ends with the same weights."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)
    options = TrainingOptions(
        epochs=30,
        batch_size=32,
        optimizer=OptimizerOptions(name="adam", learning_rate=0.3),
        seed=0,
    )

    def train() -> tuple[np.ndarray, bool]:
        layers = [{"units": 32, "activation": "relu"}, {"units": 3, "activation": "softmax"}]
        network = Network(8, layers, seed=0)
        trainer = Trainer(network, x, y, options)
        trainer.run()
        logits = trainer.loop.logits  # the last epoch's z[L]
        outputs = np.empty_like(logits)
        activations.softmax(logits, outputs)
        made = bool(((outputs > 0) & (outputs < np.finfo(np.float32).tiny)).any())
        return network.params.copy(), made

    flushed, _ = train()
    saved = subnormals._FENV
    subnormals._FENV = None  # the IEEE run: flushed() does nothing
    try:
        ieee, made_subnormals = train()
    finally:
        subnormals._FENV = saved
    assert made_subnormals, "the case should make subnormal outputs"
    np.testing.assert_array_equal(flushed, ieee)
