"""Backprop's neural-network engine: dense networks trained by backpropagation in NumPy.

The engine is a plain library. It imports only NumPy, the standard library and its own
modules (never the web, database or worker code), so it can be used, tested and
benchmarked on its own. Notation follows the primer: layer l computes
z[l] = W[l]·a[l-1] + b[l] and a[l] = g[l](z[l]) with W[l] of shape (n[l], n[l-1]).

Modules, one concept each:

- ``errors``       EngineError and its kinds (ConfigError, DataError and its
                   InputWidthError, DivergenceError, ExportFormatError for refused files),
                   each with a ``loc`` naming the offending input.
- ``activations``  g and g' in tables keyed by name; ``losses`` the losses and the
                   scale of their output deltas (fused a - y for the cross-entropies).
- ``architecture`` validation of layer lists, ``initializers`` he / xavier / auto.
- ``network``      Network: flat parameters with W/b views, config, the one forward loop
                   (inference and training) and backward, each line beside its primer
                   equation; Workspace, the preallocated buffers of a training step.
- ``preprocessing`` the one feature check (rows of finite numbers) and standardisation;
                   ``labels`` class labels <-> output units and the
                   one statement of which labels fit which output layer;
                   ``splitting`` the validation split; ``trainingdata`` the prepared
                   training and validation rows.
- ``npzio``        safe npz / .npy reading (headers checked first, no pickle) and writing.
- ``model``        Model: a trained network + standardisation + classes; npz export /
                   import (read through ``npzio``). ``datasets``: toy data sets.
- ``options``      TrainingOptions and its parts, each option declared once (default,
                   bounds, description: ``optionspec``); ``schedules`` learning-rate schedules;
                   ``metrics`` loss / accuracy / mae / r2.
- ``evaluation``   a model's predictions on labelled data scored as sklearn.metrics does:
                   confusion matrix, per-class precision / recall / f1, log loss, AUC
                   (ranks), ROC points; mse / rmse / mae / r2 per target.
                   ``scoring`` a model's outputs over many rows in blocks, scored
                   against a dataset's labels (what an evaluation computes).
- ``optimizers``   SGD, momentum, Adam (simplest first) and the whole update of a step:
                   L2 penalty, clipping, optimizer step (updates in 64 Ki-element chunks).
- ``loop``         EpochLoop: the epochs of minibatch steps (forward, backward, update)
                   and their progress reporting (Progress, metrics, history, early stopping);
                   ``epochrows`` each epoch's row order, targets and batch features;
                   ``subnormals`` the epochs' arithmetic with subnormal floats flushed
                   to zero (x86-64 Linux).
- ``diagnostics``  LayerWatch: per-layer statistics of every epoch (gradient, weight and
                   update norms, activations, dead and saturated units, histograms);
                   ``findings`` the plain-language diagnoses drawn from them.
- ``training``     Trainer (data preparation, the run, results) and TrainingResult;
                   ``checkpoint`` training state <-> bytes.
- ``pack``         trials of one shape on the same data trained together in lockstep,
                   one NumPy call per operation for all of them, each ending bit-identical
                   to its solo run (a sweep's trials).

Arrays are float32 by default (the fast path) and float64 on request (gradient checks).
Nothing is ever pickled: exports and checkpoints are npz archives plus JSON, read back
with ``allow_pickle=False``.
"""
