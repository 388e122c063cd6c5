"""FLOPs of one training step of a Keras model, with the method that gave them.

- ``xla``: on the JAX backend, XLA's own cost analysis of Keras' train step, lowered for the CPU from
  the shapes alone (no data, no device memory). Lowered for the CPU because on a GPU XLA does not count
  the cuBLAS/cuDNN calls it hands matrix products to: there it reported 0.1-33% of the true figure
  (bench/results/gpm_probe_h100_run1.txt). FLOPs do not depend on the device that runs them.
- ``analytic``: a count over the standard Keras layers (Dense, convolutions of every kind, pooling,
  normalisation, Embedding, MultiHeadAttention, recurrent layers), training = 3 x forward (the MFU
  convention: Kaplan et al. 2020, Chowdhery et al. 2022). Layers it does not know and that hold
  weights are named as uncounted.

A multiply-add is 2 FLOPs. Nothing here runs a step or touches the user's model state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TRAINING_FACTOR = 3  # forward + backward (2 x forward): the MFU literature's convention
NORM_FLOPS_PER_ELEMENT = 5  # subtract mean, divide, scale, shift, and the statistics: an estimate


@dataclass
class StepFlops:
    flops: float | None  # per training step
    method: str | None  # "xla (JAX cost analysis, lowered for the CPU)" or "analytic (3 x forward)"
    analytic: float | None = None  # the analytic count, also when XLA gave the figure
    uncounted: list[str] = field(default_factory=list)  # layers with weights the count does not know
    note: str | None = None


def per_step(model: Any, backend: str, x: Any = None, y: Any = None, batch_size: int | None = None) -> StepFlops:
    """FLOPs of one training step at ``batch_size`` samples."""
    analytic, uncounted = analytic_training_flops(model, batch_size) if batch_size else (None, [])
    note = None
    if backend == "jax" and batch_size:
        try:
            xla = xla_training_flops(model, x, y, batch_size)
        except Exception as exc:  # noqa: BLE001 - the analytic count stands in
            xla, note = None, f"XLA's cost analysis failed ({type(exc).__name__}); the analytic count is used"
        if xla:
            return StepFlops(xla, "xla (JAX cost analysis of the train step)", analytic, uncounted, note)
    if analytic is None:
        return StepFlops(None, None, None, uncounted, note or "the batch size is unknown, so FLOPs per step are too")
    if uncounted:
        note = f"not counted: {', '.join(sorted(set(uncounted)))}"
    return StepFlops(analytic, "analytic (Keras layers, training = 3 x forward)", analytic, uncounted, note)


# --- analytic ------------------------------------------------------------------------------------


def analytic_training_flops(model: Any, batch_size: int) -> tuple[float | None, list[str]]:
    forward, uncounted = forward_flops_per_sample(model)
    if forward is None:
        return None, uncounted
    return TRAINING_FACTOR * forward * batch_size, uncounted


def forward_flops_per_sample(model: Any) -> tuple[float | None, list[str]]:
    """Forward FLOPs for one sample, and the layers with weights that could not be counted."""
    total, uncounted = 0.0, []
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):  # a nested model
            flops, inner = forward_flops_per_sample(layer)
            uncounted += inner
            total += flops or 0.0
            continue
        flops = layer_flops(layer)
        if flops is None:
            if getattr(layer, "weights", None):
                uncounted.append(type(layer).__name__)
            continue
        total += flops
    if total == 0 and uncounted:
        return None, uncounted
    return total, uncounted


def _shape(tensor: Any) -> tuple | None:
    shape = getattr(tensor, "shape", None)
    if shape is None or any(d is None for d in tuple(shape)[1:]):
        return None
    return tuple(int(d) for d in tuple(shape)[1:])  # without the batch dimension


def _io(layer: Any) -> tuple[tuple | None, tuple | None]:
    try:
        inputs, outputs = layer.input, layer.output
    except (AttributeError, ValueError):  # a layer never called on a symbolic input
        return None, None
    if isinstance(inputs, (list, tuple)):
        inputs = inputs[0]
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return _shape(inputs), _shape(outputs)


def layer_flops(layer: Any) -> float | None:
    """Forward FLOPs per sample of one layer; None when the layer is unknown or its shapes are."""
    import keras

    L = keras.layers
    kind = type(layer)
    if isinstance(layer, _layers(L, _FREE)):
        return 0.0  # elementwise or data movement: negligible beside the layers that multiply
    if isinstance(layer, L.Embedding):
        return 0.0  # a lookup
    if isinstance(layer, L.MultiHeadAttention):
        return _attention(layer)
    if isinstance(layer, (L.LSTM, L.GRU, L.SimpleRNN)):
        return _recurrent(layer)
    if isinstance(layer, L.Bidirectional):
        forward, backward = _recurrent(layer.forward_layer), _recurrent(layer.backward_layer)
        return None if forward is None or backward is None else forward + backward
    shape_in, shape_out = _io(layer)
    if shape_in is None or shape_out is None:
        return None
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        positions = math.prod(shape_out) / shape_out[-1]
        return 2 * positions * (_size(layer.depthwise_kernel) + _size(layer.pointwise_kernel))
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return 2 * (math.prod(shape_in) / shape_in[-1]) * _size(layer.kernel)
    if isinstance(layer, (L.Dense, L.EinsumDense, L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv1D,
                          L.DepthwiseConv2D)):
        return 2 * (math.prod(shape_out) / shape_out[-1]) * _size(layer.kernel)
    pool = getattr(layer, "pool_size", None)
    if pool is not None and "Pooling" in kind.__name__:
        return float(math.prod(shape_out) * math.prod(pool if isinstance(pool, (tuple, list)) else (pool,)))
    if "GlobalAveragePooling" in kind.__name__ or "GlobalMaxPooling" in kind.__name__:
        return float(math.prod(shape_in))
    if isinstance(layer, (L.BatchNormalization, L.LayerNormalization, L.GroupNormalization)):
        return float(NORM_FLOPS_PER_ELEMENT * math.prod(shape_in))
    return None


_FREE = ("Activation", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "Flatten", "Reshape", "InputLayer",
         "Permute", "RepeatVector", "Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum", "Minimum",
         "ReLU", "Softmax", "LeakyReLU", "ELU", "PReLU", "Rescaling", "Identity", "GaussianNoise", "Cropping2D",
         "ZeroPadding2D", "UpSampling2D", "Masking")


def _layers(module: Any, names: tuple[str, ...]) -> tuple:
    return tuple(cls for cls in (getattr(module, n, None) for n in names) if isinstance(cls, type))


def _size(variable: Any) -> int:
    return math.prod(int(d) for d in variable.shape)


def _recurrent(layer: Any) -> float | None:
    shape_in, _ = _io(layer)
    cell = getattr(layer, "cell", None)
    if shape_in is None or cell is None or len(shape_in) != 2:
        return None
    steps = shape_in[0]
    return 2.0 * steps * (_size(cell.kernel) + _size(cell.recurrent_kernel))


def _attention(layer: Any) -> float | None:
    try:
        query, value = layer.input[0], layer.input[1]
    except (AttributeError, ValueError, TypeError, IndexError):
        return None
    q, v = _shape(query), _shape(value)
    if q is None or v is None:
        return None
    tq, tv = math.prod(q[:-1]), math.prod(v[:-1])
    heads, key_dim = layer.num_heads, layer.key_dim
    value_dim = layer.value_dim or key_dim
    projections = 2 * (tq * _size(layer.query_dense.kernel) + tv * _size(layer.key_dense.kernel)
                       + tv * _size(layer.value_dense.kernel) + tq * _size(layer.output_dense.kernel))
    scores = 2 * heads * tq * tv * key_dim
    mixing = 2 * heads * tq * tv * value_dim
    return float(projections + scores + mixing)


# --- XLA (JAX) -----------------------------------------------------------------------------------


def xla_training_flops(model: Any, x: Any, y: Any, batch_size: int) -> float | None:
    """XLA's FLOPs for Keras' train step at ``batch_size``, lowered for the CPU from shapes alone."""
    import jax
    import jax.numpy as jnp

    data_x = _abstract_batch(x, batch_size)
    if data_x is None:
        return None
    data_y = _abstract_batch(y, batch_size) if y is not None else None

    def spec(variables: Any) -> list:
        return [jax.ShapeDtypeStruct(tuple(v.shape), jnp.dtype(v.dtype)) for v in variables]

    state = (spec(model.trainable_variables), spec(model.non_trainable_variables),
             spec(model.optimizer.variables), spec(model.metrics_variables))
    with jax.default_device(jax.devices("cpu")[0]):
        lowered = jax.jit(model.train_step).lower(state, (data_x, data_y, None))
    cost = lowered.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def _abstract_batch(data: Any, batch_size: int) -> Any:
    """Shape-and-dtype stand-ins for one batch of ``data`` (an array, or a list/tuple/dict of them)."""
    import jax
    import jax.numpy as jnp

    if isinstance(data, (list, tuple)):
        items = [_abstract_batch(d, batch_size) for d in data]
        return None if any(p is None for p in items) else type(data)(items)
    if isinstance(data, dict):
        named = {k: _abstract_batch(v, batch_size) for k, v in data.items()}
        return None if any(p is None for p in named.values()) else named
    shape, dtype = getattr(data, "shape", None), getattr(data, "dtype", None)
    if shape is None or dtype is None or not hasattr(data, "__len__"):
        return None
    return jax.ShapeDtypeStruct((batch_size,) + tuple(int(d) for d in shape[1:]), jnp.dtype(str(dtype)))
