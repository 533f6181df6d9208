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
- ``network``      Network: flat parameters with W/b views, forward, backward, config.
- ``workspace``    the preallocated forward / backward pass used for training.
- ``preprocessing`` the one feature check (rows of finite numbers) and standardisation;
                   ``labels`` class labels <-> output units.
- ``npzio``        safe npz / .npy reading (headers checked first, no pickle) and writing.
- ``model``        Model: a trained network + standardisation + classes; npz export /
                   import. ``datasets``: toy data sets.
- ``options``      TrainingOptions and its parts; ``optimizers``, ``schedules``,
                   ``metrics``, ``splitting`` (validation split), ``checkpoint``
                   (training state <-> bytes), ``training`` (Trainer, the fit loop).

Arrays are float32 by default (the fast path) and float64 on request (gradient checks).
Nothing is ever pickled: exports and checkpoints are npz archives plus JSON, read back
with ``allow_pickle=False``.
"""
